// Fields the JSON schemas of `status --json` share.

/** A MAC address as the reports write it: six lower-case hex pairs joined by colons. */
export const MAC_FIELD = { type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' } as const;
