// A bounded memo keyed by a list of strings (a request's feature references), without a joined key: a
// lookup hashes a few characters of each string and compares the list with the stored copy, where a key
// joined from the list would make garbage in proportion to it on every request.

export class StringListMemo<T> {
  private readonly byHash = new Map<number, Array<{ list: string[]; tag: number; value: T }>>();
  private size = 0;

  constructor(private readonly limit = 1024) {}

  /** The value stored for `list` under `tag`; undefined if none, or if `list` holds a non-string. */
  get(list: readonly unknown[], tag = 0): T | undefined {
    const h = hashList(list, tag);
    if (h === undefined) return undefined;
    const bucket = this.byHash.get(h);
    if (bucket === undefined) return undefined;
    for (const e of bucket) if (e.tag === tag && sameList(e.list, list)) return e.value;
    return undefined;
  }

  /** Stores `value` for a copy of `list` (lists holding a non-string are not stored). */
  set(list: readonly unknown[], tag: number, value: T): void {
    const h = hashList(list, tag);
    if (h === undefined) return;
    // bounded against ad-hoc request shapes
    if (this.size >= this.limit) this.clear();
    const entry = { list: list.slice() as string[], tag, value };
    const bucket = this.byHash.get(h);
    if (bucket) bucket.push(entry);
    else this.byHash.set(h, [entry]);
    this.size++;
  }

  clear(): void {
    this.byHash.clear();
    this.size = 0;
  }
}

/** Length, middle and last character of each string; undefined when an element is not a string. */
function hashList(list: readonly unknown[], tag: number): number | undefined {
  let h = (Math.imul(tag + 1, 0x9e3779b1) + list.length) | 0;
  for (let i = 0; i < list.length; i++) {
    const s = list[i];
    if (typeof s !== "string") return undefined;
    const n = s.length;
    h = (Math.imul(h, 31) + n) | 0;
    if (n > 0) h = (Math.imul(h, 31) + s.charCodeAt(n >> 1) * 65599 + s.charCodeAt(n - 1)) | 0;
  }
  return h;
}

function sameList(a: readonly string[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
