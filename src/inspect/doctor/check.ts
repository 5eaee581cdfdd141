// What a doctor check answers, and the schema of the report.
export type CheckStatus = 'OK' | 'WARN' | 'FAIL';

export interface Check {
  /** Stable: `privileges`, `kernel.macvlan`, `kernel.8021q`, `kernel.ipvlan`, `parent:<name>`, `plugin`, `socket`, `version`, `state`, `drift`, `drift:<link or id>`, `ipv6-prefixes`, `ipv6-prefix:<endpoint>`, `ipv6-pool-prefixes`, `ipv6-pool-prefix:<prefix>`, `etcd` or `etcd.rtt`. */
  id: string;
  status: CheckStatus;
  message: string;
  /** What to do; present on every WARN and FAIL. */
  fix?: string;
}

export interface DoctorReport {
  version: 1;
  /** The version of the tsmacvlan that ran doctor (package.json's). */
  tsmacvlanVersion: string;
  /** No check FAILed (the exit code is 0 exactly then). */
  ok: boolean;
  checks: Check[];
}

const nonEmpty = { type: 'string', minLength: 1 } as const;

/** The schema of `tsmacvlan doctor --json` (JSON Schema draft-07). Not expressible in it: `ok` is true iff no check is FAIL. */
export const DOCTOR_JSON_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'tsmacvlan doctor',
  type: 'object',
  required: ['version', 'tsmacvlanVersion', 'ok', 'checks'],
  additionalProperties: false,
  properties: {
    version: { const: 1 },
    tsmacvlanVersion: nonEmpty,
    ok: { type: 'boolean' },
    checks: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['id', 'status', 'message'],
        additionalProperties: false,
        properties: {
          id: {
            type: 'string',
            pattern:
              '^(privileges|kernel\\.macvlan|kernel\\.8021q|kernel\\.ipvlan|plugin|socket|version|state|drift|etcd|etcd\\.rtt|parent:\\S+|drift:\\S+)$',
          },
          status: { enum: ['OK', 'WARN', 'FAIL'] },
          message: nonEmpty,
          fix: nonEmpty,
        },
        if: { properties: { status: { enum: ['WARN', 'FAIL'] } } },
        then: { required: ['fix'] },
      },
    },
  },
} as const;

export const RANK: Record<CheckStatus, number> = { OK: 0, WARN: 1, FAIL: 2 };
