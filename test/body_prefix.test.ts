// BodyPrefixes: request bodies that start like an earlier one parse to what JSON.parse gives.
import { describe, expect, it } from "vitest";
import { BodyPrefixes } from "../server/body_prefix.js";

const features = Array.from({ length: 40 }, (_, i) => `view_${i % 4}:feature_${i}`);
const body = (ids: number[], extra = "") =>
  Buffer.from(`{"features":${JSON.stringify(features)},"entities":{"user_id":${JSON.stringify(ids)}}${extra}}`);

describe("BodyPrefixes", () => {
  it("parses a body starting with a remembered feature list to what JSON.parse gives, sharing the list", () => {
    const prefixes = new BodyPrefixes();
    const first = prefixes.parse(body([1])) as { features: string[] };
    expect(first).toEqual(JSON.parse(body([1]).toString()));
    const again = body([2, 3], ',"full_feature_names":true');
    const text = again.toString();
    const second = prefixes.parse(again) as { features: string[] };
    expect(second).toEqual(JSON.parse(text));
    const third = prefixes.parse(body([4])) as { features: string[] };
    // the remembered list (a copy of the first body's), not a fresh parse
    expect(third.features).toBe(second.features);
    expect(third.features).not.toBe(first.features);
  });

  it("keeps JSON.parse's answer for a later duplicate features key, other spellings, and malformed rests", () => {
    const prefixes = new BodyPrefixes();
    prefixes.parse(body([1]));
    const dup = body([5], ',"features":["view_9:x"]');
    const dupText = dup.toString();
    expect(prefixes.parse(dup)).toEqual(JSON.parse(dupText));
    // a different spelling of the same list (spaces) is parsed whole
    const spaced = Buffer.from(`{"features": ${JSON.stringify(features)}, "entities":{"user_id":[6]}}`);
    expect(prefixes.parse(spaced)).toEqual(JSON.parse(spaced.toString()));
    // a malformed rest throws JSON.parse's error for the whole body, and leaves the body as it was
    const bad = Buffer.from(`{"features":${JSON.stringify(features)},"entities":{"user_id":[7}}`);
    const badText = bad.toString();
    let wanted = "";
    try {
      JSON.parse(badText);
    } catch (e) {
      wanted = (e as Error).message;
    }
    expect(() => prefixes.parse(bad)).toThrow(wanted);
    expect(bad.toString()).toBe(badText);
  });

  it("does not remember lists holding brackets in a way that would cut them, nor short bodies", () => {
    const prefixes = new BodyPrefixes(8, 0);
    const odd = ["v:a]b", 'v:"q"', "v:c\\]"];
    const b1 = Buffer.from(`{"features":${JSON.stringify(odd)},"entities":{"id":[1]}}`);
    expect(prefixes.parse(b1)).toEqual(JSON.parse(b1.toString()));
    const b2 = Buffer.from(`{"features":${JSON.stringify(odd)},"entities":{"id":[2]}}`);
    const parsed = prefixes.parse(b2) as { features: string[]; entities: { id: number[] } };
    expect(parsed.features).toEqual(odd);
    expect(parsed.entities.id).toEqual([2]);
    const short = new BodyPrefixes();
    const s1 = Buffer.from('{"features":["v:a"],"entities":{"id":[1]}}');
    short.parse(s1);
    const s2 = Buffer.from('{"features":["v:a"],"entities":{"id":[2]}}');
    const p2 = short.parse(s2) as { features: string[] };
    expect(p2).toEqual({ features: ["v:a"], entities: { id: [2] } });
    // under 256 bytes: parsed whole every time
    expect(
      (short.parse(Buffer.from('{"features":["v:a"],"entities":{"id":[3]}}')) as { features: string[] }).features,
    ).not.toBe(p2.features);
  });
});
