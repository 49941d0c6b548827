// `npx tsx scripts/cut_fixtures.ts`: cuts the small test slices in test/fixtures/ from the full data sets in
// FSTORE_DATA_DIR (default ../shared/data). Lines are copied byte for byte (CSV quoting and CRLF line ends
// included), so a slice parses exactly as the full file does; running it again gives the same files.
//   ml-latest-small: every rating of the users with userId % 20 = 1 (whole histories, user 1 among them); the
//     movies they rated, the movies nobody rated in the full file, and the titles holding a double quote.
//   rees46-2019-oct-head: every event of the sessions whose id starts with "0" or "1" (whole sessions; the ids
//     are random UUIDs, so this is a 1-in-8 sample of the sessions across the file's whole time span).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { dataSetDir } from "../adapters/datasets/movielens.js";
import { FstoreError } from "../common/errors.js";

const out = fileURLToPath(new URL("../test/fixtures", import.meta.url));

/** The header line and the data lines of a CSV file, each with its own line end. */
function lines(path: string): { header: string; rows: string[] } {
  const all = readFileSync(path, "utf8").split(/(?<=\n)/);
  return { header: all[0], rows: all.slice(1).filter((l) => l.trim() !== "") };
}

/** The first field of a CSV line (an unquoted id in every file cut here). */
const firstField = (line: string): string => line.slice(0, line.indexOf(","));

function write(path: string, header: string, rows: string[]): void {
  writeFileSync(path, header + rows.join(""));
  console.log(`${relative(process.cwd(), path)}: ${rows.length} rows`);
}

/** The full data set's folder; a missing one ends the script with the loader's one-line message. */
function source(name: string): string {
  try {
    return dataSetDir(name);
  } catch (e) {
    if (!(e instanceof FstoreError)) throw e;
    console.error(e.message);
    process.exit(1);
  }
}

// MovieLens
const ml = source("ml-latest-small");
const mlOut = join(out, "ml-latest-small");
mkdirSync(mlOut, { recursive: true });
const ratings = lines(join(ml, "ratings.csv"));
const kept = ratings.rows.filter((l) => Number(firstField(l)) % 20 === 1);
write(join(mlOut, "ratings.csv"), ratings.header, kept);
const movieOf = (l: string) => l.split(",")[1];
const ratedHere = new Set(kept.map(movieOf));
const ratedAnywhere = new Set(ratings.rows.map(movieOf));
const movies = lines(join(ml, "movies.csv"));
write(
  join(mlOut, "movies.csv"),
  movies.header,
  movies.rows.filter((l) => {
    const id = firstField(l);
    return ratedHere.has(id) || !ratedAnywhere.has(id) || l.includes('""');
  }),
);
// The licence travels with every copy, transformations included: its sections of the original README.txt.
const readme = readFileSync(join(ml, "README.txt"), "utf8");
const licence = readme.slice(readme.indexOf("Usage License"), readme.indexOf("Further Information About GroupLens"));
if (!licence.startsWith("Usage License") || !licence.includes("Citation"))
  throw new Error(`${join(ml, "README.txt")}: no "Usage License" ... "Citation" sections found`);
writeFileSync(
  join(mlOut, "README.txt"),
  "A slice of MovieLens ml-latest-small (GroupLens), cut by scripts/cut_fixtures.ts: see ../README.md.\n" +
    "The licence and citation sections of the data set's README.txt, verbatim:\n\n" +
    licence.trimEnd() +
    "\n",
);

// REES46
const rees = source("rees46-2019-oct-head");
const reesOut = join(out, "rees46-2019-oct-head");
mkdirSync(reesOut, { recursive: true });
const events = lines(join(rees, "2019-Oct-head.csv"));
const session = (l: string) => l.trimEnd().slice(l.lastIndexOf(",") + 1);
write(
  join(reesOut, "2019-Oct-head.csv"),
  events.header,
  events.rows.filter((l) => /^[01]/.test(session(l))),
);
