/**
 * Value checks shared by the workers that take named values from outside:
 * numbers must be finite, categories must be strings, and a name must be
 * known to the spec. A failure names the field and the reason, and becomes a
 * dead letter with stage VALIDATION.
 */
export interface ValueProblem {
  code: 'NON_FINITE' | 'WRONG_TYPE' | 'UNKNOWN_FIELD';
  message: string;
}

export function checkValue(name: string, kind: 'numeric' | 'categorical', value: unknown): ValueProblem | null {
  if (value === null || value === undefined) return null;
  if (kind === 'numeric') {
    if (typeof value !== 'number') return { code: 'WRONG_TYPE', message: `${name} must be a number or null, got ${JSON.stringify(value)}` };
    if (!Number.isFinite(value)) return { code: 'NON_FINITE', message: `${name} is ${value}; numeric values must be finite` };
    return null;
  }
  if (typeof value !== 'string') return { code: 'WRONG_TYPE', message: `${name} is categorical and must be a string or null, got ${JSON.stringify(value)}` };
  return null;
}
