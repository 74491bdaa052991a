// store/kinds: which kind of index entry a search parameter stores, shared by every engine's
// compiler (SQLite picks an idx_* table by it, MongoDB an array of the current document).

import { findParam } from '../search/params.js';
import type { IndexEntry } from '../search/types.js';

export type EntryKind = IndexEntry['kind'];

/** The entry kind of `param` (a code, "<code>:identifier", or a composite component "<code>#<i>") on `types`. */
export function entryKindOf(types: string[], param: string): EntryKind {
  const [code, suffix] = param.split(':');
  if (suffix === 'identifier' || suffix === 'of-type') return 'token';
  const [base, component] = code.split('#');
  let definition = types.map((type) => findParam(type, base)).find(Boolean);
  if (definition && component !== undefined) definition = definition.components?.[Number(component)]?.param;
  const type = definition?.type;
  if (type === 'token' || type === 'string' || type === 'date' || type === 'number' || type === 'quantity' || type === 'reference' || type === 'uri') return type;
  throw new Error(`no index for parameter ${param} (${type ?? 'unknown'})`);
}
