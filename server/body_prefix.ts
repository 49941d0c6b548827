// Request bodies that start like an earlier one, parsed without their known start.
//
// A service sends the same feature list with every read (`{"features":[...],"entities":{...}}`), and parsing
// that list again was a large share of a wide read's garbage (bench/README.md). The bytes of a body's
// `{"features":[...],` are remembered with the parsed list; a later body that starts with exactly those bytes
// has only its rest parsed and gets the remembered list (shared: handlers must not change it). Anything else
// is parsed whole.

/** A remembered start of a body: its bytes, ending with the comma after the list, and the list. */
interface Prefix {
  bytes: Buffer;
  features: readonly unknown[];
}

const FEATURES_KEY = Buffer.from('{"features":[');
const OPEN_BRACE = 0x7b;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

export class BodyPrefixes {
  private readonly known: Prefix[] = [];

  constructor(
    /** remembered starts (feature lists), most recent first */
    private readonly limit = 8,
    /** shorter starts are not worth remembering */
    private readonly minBytes = 256,
  ) {}

  /**
   * The body parsed as JSON: the rest after a remembered start, with the remembered features put back,
   * when one matches; else the whole body (and its start remembered if it has one). Throws as
   * JSON.parse does on malformed JSON (the whole body's error, not the rest's).
   */
  parse(body: Buffer): unknown {
    for (const p of this.known) {
      const n = p.bytes.length;
      if (body.length <= n || body.compare(p.bytes, 0, n, 0, n) !== 0) continue;
      // `,"entities":...}` -> `{"entities":...}`: the body is ours to change
      body[n - 1] = OPEN_BRACE;
      let rest: unknown;
      try {
        rest = JSON.parse(body.toString("utf8", n - 1));
      } catch {
        rest = undefined;
      }
      if (typeof rest !== "object" || rest === null || Array.isArray(rest)) {
        body[n - 1] = COMMA;
        break; // parsed whole below, for the whole body's error message
      }
      // a later "features" key wins, as in JSON.parse of the whole body
      if (!Object.hasOwn(rest, "features")) (rest as Record<string, unknown>).features = p.features;
      return rest;
    }
    const parsed: unknown = JSON.parse(body.toString("utf8"));
    this.remember(body, parsed);
    return parsed;
  }

  private remember(body: Buffer, parsed: unknown): void {
    if (body.length < this.minBytes || body.compare(FEATURES_KEY, 0, FEATURES_KEY.length, 0, FEATURES_KEY.length) !== 0)
      return;
    const features = (parsed as { features?: unknown }).features;
    if (!Array.isArray(features)) return;
    const end = listEnd(body, FEATURES_KEY.length);
    // the list must be followed by a comma and more members
    if (end < 0 || body[end + 1] !== COMMA) return;
    const bytes = Buffer.from(body.subarray(0, end + 2));
    // the list as it is in the whole body (no duplicate "features" key later on)
    let own: unknown;
    try {
      own = JSON.parse(`${body.toString("utf8", FEATURES_KEY.length - 1, end + 1)}`);
    } catch {
      return;
    }
    if (!Array.isArray(own) || own.length !== features.length || own.some((f, i) => f !== features[i])) return;
    if (this.known.some((p) => p.bytes.equals(bytes))) return;
    if (this.known.length >= this.limit) this.known.pop();
    this.known.unshift({ bytes, features: features.slice() });
  }
}

/** Index of the `]` closing the JSON array whose items start at `from`, or -1 (strings may hold `]`). */
function listEnd(b: Buffer, from: number): number {
  let inString = false;
  for (let i = from; i < b.length; i++) {
    const c = b[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === CLOSE_BRACKET) return i;
    // a nested array or object: not a list of feature references; not remembered
    else if (c === 0x5b || c === OPEN_BRACE) return -1;
  }
  return -1;
}
