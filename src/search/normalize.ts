// search/normalize: value normalisation shared by the write path (index entries) and the query
// parser (search values), so that both sides of a comparison are folded the same way.

// Letters that Unicode decomposition does not split into a base letter and a mark.
const LIGATURES: Record<string, string> = { œ: 'oe', æ: 'ae', ß: 'ss', ø: 'o', đ: 'd', ð: 'd', ł: 'l', þ: 'th', ı: 'i' };
const LIGATURE_RE = /[œæßøđðłþı]/g;
const MARKS_RE = /\p{M}+/gu;
// Punctuation and whitespace (incl. NBSP and other Unicode spaces) become one space.
const SEPARATORS_RE = /[\p{P}\s]+/gu;
const ASCII_RE = /^[\x20-\x7e]*$/;

/**
 * Folds a string for case- and accent-insensitive starts-with / contains matching (R4 search
 * 3.1.1.4.6): lower case; compatibility decomposition with combining marks removed ("Hélène" and
 * "HELENE" both give "helene"); œ æ ß ø... spelled out; punctuation and runs of whitespace become
 * one space ("Jean-Pierre" gives "jean pierre"); trimmed. May return '' (e.g. for "-").
 */
export function normalizeString(s: string): string {
  let v = s.toLowerCase();
  if (!ASCII_RE.test(v)) {
    v = v.normalize('NFKD').replace(MARKS_RE, '').replace(LIGATURE_RE, (c) => LIGATURES[c] ?? c);
  }
  return v.replace(SEPARATORS_RE, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Dates

// FHIR date, dateTime and instant (and the partial forms search values use: a time without
// seconds). A time zone is optional; without one the value is read as UTC.
const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Epoch ms of a UTC calendar time; month may overflow (12 = January of the next year). Safe for years < 100. */
function utc(y: number, month0: number, day: number, h = 0, mi = 0, s = 0, ms = 0): number {
  const d = new Date(Date.UTC(2000, 0, 1, h, mi, s, ms));
  d.setUTCFullYear(y, month0, day);
  return d.getTime();
}

/**
 * The implicit range of a FHIR date, dateTime or instant, by its precision, as inclusive epoch
 * milliseconds: "2024" is the whole year, "2024-02" the whole month (29 days in leap years), a
 * day its 24 hours (UTC), a time with seconds that second's 1000 ms, with a fraction of n digits
 * 10^(3-n) ms (1 ms beyond 3 digits). Without a zone the value is read as UTC. Null when the
 * string is not a valid date (never throws).
 */
export function dateRange(s: string): [number, number] | null {
  const m = DATE_RE.exec(s);
  if (!m) return null;
  const y = Number(m[1]);
  if (y < 1) return null;
  if (m[2] === undefined) return [utc(y, 0, 1), utc(y + 1, 0, 1) - 1];
  const mo = Number(m[2]);
  if (mo < 1 || mo > 12) return null;
  if (m[3] === undefined) return [utc(y, mo - 1, 1), utc(y, mo, 1) - 1];
  const d = Number(m[3]);
  if (d < 1 || d > (mo === 2 && isLeap(y) ? 29 : DAYS[mo - 1])) return null;
  if (m[4] === undefined) {
    const low = utc(y, mo - 1, d);
    return [low, low + 86_400_000 - 1];
  }
  const h = Number(m[4]);
  const mi = Number(m[5]);
  // 60 seconds is allowed by FHIR for leap seconds (it lands on the next minute).
  const sec = m[6] === undefined ? 0 : Number(m[6]);
  if (h > 23 || mi > 59 || sec > 60) return null;
  let unit = m[6] === undefined ? 60_000 : 1000;
  let ms = 0;
  const fraction = m[7];
  if (fraction !== undefined) {
    ms = Number(fraction.slice(0, 3).padEnd(3, '0'));
    unit = fraction.length >= 3 ? 1 : 10 ** (3 - fraction.length);
  }
  let offset = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 14 || om > 59) return null;
    offset = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  const low = utc(y, mo - 1, d, h, mi, sec, ms) - offset;
  return Number.isFinite(low) ? [low, low + unit - 1] : null;
}
