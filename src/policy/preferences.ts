// policy/preferences: the patient's notification choices, data on their own record (an extension
// of Patient): which kinds of access reach their inbox and which are also pushed to their
// subscriptions (notify/, docs/notifications.md). Emergency accesses are always notified and
// pushed: a choice that would turn them off is refused (422) like a Consent the engine would not
// enforce. Pure.

import type { Extension, Patient } from '@medplum/fhirtypes';

export type NoticeKind = 'read' | 'write' | 'own-permit' | 'document' | 'account';
export const NOTICE_KINDS: readonly NoticeKind[] = ['read', 'write', 'own-permit', 'document', 'account'];

/** The extension on Patient that holds the patient's notification choices (docs/notifications.md). */
export const PREFERENCES_URL = 'https://carnet.example.org/fhir/StructureDefinition/notification-preferences';

/** none: not notified at all; inbox: a Communication in the inbox; push: that, and pushed to the patient's subscriptions. */
export type Delivery = 'none' | 'inbox' | 'push';
export const DELIVERIES: readonly Delivery[] = ['none', 'inbox', 'push'];
export type Preferences = Record<NoticeKind, Delivery>;
export const DEFAULT_PREFERENCES: Preferences = { read: 'push', write: 'push', 'own-permit': 'push', document: 'push', account: 'push' };

/** The problems of a preferences extension, as 422 issues (an `emergency` choice other than push is one: it cannot be turned off). */
export function preferenceIssues(patient: Patient): { expression: string; diagnostics: string }[] {
  const issues: { expression: string; diagnostics: string }[] = [];
  (patient.extension ?? []).forEach((extension, i) => {
    if (extension.url !== PREFERENCES_URL) return;
    (extension.extension ?? []).forEach((choice, j) => {
      const expression = `Patient.extension[${i}].extension[${j}]`;
      const value = choice.valueCode as Delivery | undefined;
      if (choice.url === 'emergency') {
        if (value !== 'push') issues.push({ expression, diagnostics: 'emergency accesses are always notified and pushed; they cannot be turned off' });
      } else if (!(NOTICE_KINDS as readonly string[]).includes(choice.url)) {
        issues.push({ expression, diagnostics: `unknown notification kind "${choice.url}" (one of ${NOTICE_KINDS.join(', ')}, emergency)` });
      } else if (value === undefined || !DELIVERIES.includes(value)) {
        issues.push({ expression, diagnostics: `a notification choice is a valueCode, one of ${DELIVERIES.join(', ')}` });
      }
    });
  });
  return issues;
}

/** The patient's choices, defaults where they made none. */
export function preferencesOf(patient: Patient | undefined): Preferences {
  const preferences = { ...DEFAULT_PREFERENCES };
  const extension = patient?.extension?.find((e: Extension) => e.url === PREFERENCES_URL);
  for (const choice of extension?.extension ?? []) {
    const value = choice.valueCode as Delivery | undefined;
    if ((NOTICE_KINDS as readonly string[]).includes(choice.url) && value && DELIVERIES.includes(value)) preferences[choice.url as NoticeKind] = value;
  }
  return preferences;
}

