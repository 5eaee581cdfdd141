// JSON schemas for what Docker sends. Extra fields are allowed (newer engines add some); types are not coerced.
export const ID = { type: 'string', pattern: '^[A-Za-z0-9]{1,64}$' } as const;
export const OPTIONS = { type: ['object', 'null'] } as const;

export function body(properties: Record<string, unknown>, required: string[]) {
  return { body: { type: 'object', properties, required } };
}
