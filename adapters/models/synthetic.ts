// Synthetic Ali-CCP-like data with planted preferences, for tests, benchmarks and the synthetic experiment:
// each user prefers one item category (revealed by its user_categories feature); impressions of items in that
// category are clicked far more often. Columns are already categorified (dense indices from 0).
import type { Frame } from "./frame.js";
import { rng } from "./frame.js";
import { parseSchema, type SchemaColumn } from "./schema.js";

export interface SyntheticOptions {
  rows: number;
  users?: number;
  items?: number;
  categories?: number;
  seed?: number;
  /** click probability of an impression in / out of the user's preferred category */
  pIn?: number;
  pOut?: number;
  /** share of impressions drawn from the preferred category */
  preferredShare?: number;
}

export interface SyntheticData {
  /** impressions in time order: every feature column plus `click` (0/1) and `ts` */
  impressions: Frame;
  /** one row per item: item_id and its item-side features */
  items: Frame;
  schema: SchemaColumn[];
}

export function syntheticAliCcp(opts: SyntheticOptions): SyntheticData {
  const users = opts.users ?? 2000;
  const items = opts.items ?? 2000;
  const C = opts.categories ?? 40;
  const shops = Math.max(2, Math.floor(items / 10));
  const brands = Math.max(2, Math.floor(items / 20));
  const r = rng(opts.seed ?? 1);
  const pIn = opts.pIn ?? 0.6;
  const pOut = opts.pOut ?? 0.02;
  const share = opts.preferredShare ?? 0.3;
  const itemCat = Int32Array.from({ length: items }, (_, i) => i % C);
  const itemShop = Int32Array.from({ length: items }, () => Math.floor(r() * shops));
  const itemBrand = Int32Array.from({ length: items }, () => Math.floor(r() * brands));
  const byCat: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < items; i++) byCat[itemCat[i]].push(i);
  const userPref = Int32Array.from({ length: users }, () => Math.floor(r() * C));
  const userGender = Int32Array.from({ length: users }, () => Math.floor(r() * 3));
  const userAge = Int32Array.from({ length: users }, () => Math.floor(r() * 7));
  const userGroup = Int32Array.from({ length: users }, (_, u) => (userGender[u] * 7 + userAge[u]) % 13);
  const n = opts.rows;
  const cols = {
    user_id: new Int32Array(n),
    item_id: new Int32Array(n),
    item_category: new Int32Array(n),
    item_shop: new Int32Array(n),
    item_brand: new Int32Array(n),
    user_categories: new Int32Array(n),
    user_gender: new Int32Array(n),
    user_age: new Int32Array(n),
    user_group: new Int32Array(n),
    click: new Int32Array(n),
    ts: new Float32Array(n),
  };
  for (let k = 0; k < n; k++) {
    const u = Math.floor(r() * users);
    const preferred = r() < share;
    const pool = preferred ? byCat[userPref[u]] : null;
    const i = pool && pool.length ? pool[Math.floor(r() * pool.length)] : Math.floor(r() * items);
    cols.user_id[k] = u;
    cols.item_id[k] = i;
    cols.item_category[k] = itemCat[i];
    cols.item_shop[k] = itemShop[i];
    cols.item_brand[k] = itemBrand[i];
    cols.user_categories[k] = userPref[u];
    cols.user_gender[k] = userGender[u];
    cols.user_age[k] = userAge[u];
    cols.user_group[k] = userGroup[u];
    cols.click[k] = r() < (itemCat[i] === userPref[u] ? pIn : pOut) ? 1 : 0;
    cols.ts[k] = k;
  }
  const ids = Int32Array.from({ length: items }, (_, i) => i);
  const schema = parseSchema(
    [
      { name: "user_id", dtype: "int32", tags: ["categorical", "user", "user_id"], properties: { cardinality: users } },
      { name: "item_id", dtype: "int32", tags: ["categorical", "item", "item_id"], properties: { cardinality: items } },
      { name: "item_category", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: C } },
      { name: "item_shop", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: shops } },
      { name: "item_brand", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: brands } },
      { name: "user_categories", dtype: "int32", tags: ["categorical", "user"], properties: { cardinality: C } },
      { name: "user_gender", dtype: "int32", tags: ["categorical", "user"], properties: { cardinality: 3 } },
      { name: "user_age", dtype: "int32", tags: ["categorical", "user"], properties: { cardinality: 7 } },
      { name: "user_group", dtype: "int32", tags: ["categorical", "user"], properties: { cardinality: 13 } },
      { name: "click", dtype: "int32", tags: ["target", "binary_classification"], properties: {} },
      { name: "ts", dtype: "int64", tags: ["time"], properties: {} },
    ],
    "synthetic Ali-CCP schema",
  );
  return {
    impressions: { length: n, columns: cols },
    items: {
      length: items,
      columns: { item_id: ids, item_category: itemCat, item_shop: itemShop, item_brand: itemBrand },
    },
    schema,
  };
}

export interface PlantedOptions {
  users?: number;
  items?: number;
  categories?: number;
  /** how many categories each user prefers */
  preferred?: number;
  clicks?: number;
  /** Zipf exponent of item popularity inside a category */
  zipf?: number;
  /** share of clicks on a uniformly drawn category instead of a preferred one */
  noise?: number;
  seed?: number;
}

export interface PlantedData {
  /** clicks in time order: user_id, item_id, item_category */
  clicks: Frame;
  /** one row per item: item_id, item_category */
  items: Frame;
  schema: SchemaColumn[];
  /** P(item | user) under the planted model, for every item: what an oracle ranks by */
  oracleScores(user: number): Float32Array;
}

/**
 * Clicks with planted preferences: each user prefers `preferred` of `categories` categories and clicks items of
 * one of them (uniformly chosen), the item drawn by Zipf popularity inside the category. Item i is in category
 * i % categories with popularity rank floor(i / categories) there. Users are drawn uniformly at every click, so
 * every period of time holds every kind of user.
 */
export function plantedPreferences(opts: PlantedOptions = {}): PlantedData {
  const U = opts.users ?? 3000;
  const I = opts.items ?? 2000;
  const C = opts.categories ?? 20;
  const P = opts.preferred ?? 2;
  const n = opts.clicks ?? 120_000;
  const s = opts.zipf ?? 1;
  const noise = opts.noise ?? 0;
  if (P > C) throw new Error(`planted preferences: ${P} preferred categories of ${C}`);
  const r = rng(opts.seed ?? 1);
  const byCat: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < I; i++) byCat[i % C].push(i);
  // Within a category, P(rank k) is proportional to 1 / (k + 1)^s; cumulative weights for drawing.
  const within = new Float32Array(I);
  const cdf = byCat.map((members) => {
    const w = members.map((_, k) => 1 / Math.pow(k + 1, s));
    const total = w.reduce((a, b) => a + b, 0);
    members.forEach((i, k) => (within[i] = w[k] / total));
    let acc = 0;
    return w.map((x) => (acc += x / total));
  });
  const prefs = new Int32Array(U * P);
  for (let u = 0; u < U; u++) {
    const chosen = new Set<number>();
    while (chosen.size < P) chosen.add(Math.floor(r() * C));
    prefs.set([...chosen], u * P);
  }
  const user_id = new Int32Array(n);
  const item_id = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const u = Math.floor(r() * U);
    const c = r() < noise ? Math.floor(r() * C) : prefs[u * P + Math.floor(r() * P)];
    const x = r();
    const f = cdf[c];
    let lo = 0;
    while (lo < f.length - 1 && f[lo] < x) lo++;
    user_id[k] = u;
    item_id[k] = byCat[c][lo];
  }
  const itemIds = Int32Array.from({ length: I }, (_, i) => i);
  const schema = parseSchema(
    [
      { name: "user_id", dtype: "int32", tags: ["categorical", "user", "user_id"], properties: { cardinality: U } },
      { name: "item_id", dtype: "int32", tags: ["categorical", "item", "item_id"], properties: { cardinality: I } },
      { name: "item_category", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: C } },
    ],
    "planted preferences schema",
  );
  return {
    clicks: { length: n, columns: { user_id, item_id, item_category: item_id.map((i) => i % C) } },
    items: { length: I, columns: { item_id: itemIds, item_category: itemIds.map((i) => i % C) } },
    schema,
    oracleScores(u: number): Float32Array {
      const catShare = new Float32Array(C).fill(noise / C);
      for (let j = 0; j < P; j++) catShare[prefs[u * P + j]] += (1 - noise) / P;
      return Float32Array.from(itemIds, (i) => catShare[i % C] * within[i]);
    },
  };
}
