// The shape of `tsmacvlan status --json`, kept beside the report's types (status.ts) and checked by the tests.
import { IPVLAN_FLAGS, IPVLAN_MODES, MACVLAN_MODES } from '../driver/link-kind';
import { CLUSTER_JSON_SCHEMA } from './cluster';
import { DRIFT_KINDS } from './drift';
import { LEASE_ROW_SCHEMA } from './lease-rows';
import { RANGE_ROW_SCHEMA } from './range-rows';
import { PREFIX_LOSS_SCHEMA, SLAAC_ROW_SCHEMA } from './slaac-rows';
import { MAC_FIELD } from './schema-fields';

const nonEmpty = { type: 'string', minLength: 1 } as const;

/** The schema of `tsmacvlan status --json` (JSON Schema draft-07). */
export const STATUS_JSON_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'tsmacvlan status',
  type: 'object',
  required: [
    'version',
    'tsmacvlanVersion',
    'stateDir',
    'driver',
    'plugin',
    'group',
    'networks',
    'endpoints',
    'pools',
    'ranges',
    'leases',
    'slaac',
    'drift',
    'unreadable',
    'stateFormat',
    'cluster',
  ],
  additionalProperties: false,
  properties: {
    version: { const: 1 },
    tsmacvlanVersion: nonEmpty,
    stateDir: nonEmpty,
    driver: nonEmpty,
    plugin: {
      oneOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['name', 'id', 'enabled'],
          additionalProperties: false,
          properties: {
            name: nonEmpty,
            id: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            enabled: { type: 'boolean' },
          },
        },
      ],
    },
    group: { type: ['integer', 'null'], minimum: 1, maximum: 2147483647 },
    networks: {
      type: 'array',
      items: {
        type: 'object',
        required: [
          'id',
          'parent',
          'parentPresent',
          'kind',
          'mode',
          'flag',
          'internal',
          'vlan',
          'subnets',
          'hostAccess',
          'endpoints',
          'prefixLost',
        ],
        additionalProperties: false,
        properties: {
          id: nonEmpty,
          parent: nonEmpty,
          parentPresent: { type: 'boolean' },
          kind: { enum: ['macvlan', 'ipvlan'] },
          mode: { enum: [...MACVLAN_MODES, ...IPVLAN_MODES] },
          flag: { enum: [null, ...IPVLAN_FLAGS] },
          internal: { type: 'boolean' },
          vlan: {
            oneOf: [
              { type: 'null' },
              {
                type: 'object',
                required: ['id', 'owned'],
                additionalProperties: false,
                properties: { id: { type: 'integer', minimum: 1, maximum: 4094 }, owned: { type: 'boolean' } },
              },
            ],
          },
          subnets: { type: 'array', items: nonEmpty },
          hostAccess: { type: ['string', 'null'] },
          endpoints: { type: 'integer', minimum: 0 },
          prefixLost: PREFIX_LOSS_SCHEMA,
        },
      },
    },
    endpoints: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'networkId', 'hostLink', 'location', 'mac', 'addresses', 'prefixLost'],
        additionalProperties: false,
        properties: {
          id: nonEmpty,
          networkId: nonEmpty,
          hostLink: { type: ['string', 'null'] },
          location: { enum: ['host', 'container', 'gone'] },
          mac: MAC_FIELD,
          addresses: { type: 'array', items: nonEmpty },
          prefixLost: PREFIX_LOSS_SCHEMA,
        },
      },
    },
    pools: {
      type: 'array',
      items: {
        type: 'object',
        required: ['poolId', 'pool', 'subPool', 'v6', 'allocated', 'refs', 'routerPrefix'],
        additionalProperties: false,
        properties: {
          poolId: nonEmpty,
          pool: nonEmpty,
          subPool: { type: ['string', 'null'] },
          v6: { type: 'boolean' },
          allocated: { type: 'integer', minimum: 0 },
          refs: { type: 'integer', minimum: 1 },
          routerPrefix: {
            oneOf: [
              { type: 'null' },
              {
                type: 'object',
                required: ['parent', 'state', 'since'],
                additionalProperties: false,
                properties: {
                  parent: nonEmpty,
                  state: { enum: ['valid', 'deprecated', 'withdrawn', 'expired'] },
                  since: { type: ['string', 'null'] },
                },
              },
            ],
          },
        },
      },
    },
    ranges: { type: 'array', items: RANGE_ROW_SCHEMA },
    devices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['subnet', 'address', 'mac', 'since', 'poolId'],
        additionalProperties: false,
        properties: {
          subnet: nonEmpty,
          address: nonEmpty,
          mac: MAC_FIELD,
          since: nonEmpty,
          poolId: nonEmpty,
        },
      },
    },
    leases: { type: 'array', items: LEASE_ROW_SCHEMA },
    slaac: { type: 'array', items: SLAAC_ROW_SCHEMA },
    drift: {
      type: 'array',
      items: {
        type: 'object',
        required: ['kind', 'subject', 'message', 'fix'],
        additionalProperties: false,
        properties: { kind: { enum: [...DRIFT_KINDS] }, subject: nonEmpty, message: nonEmpty, fix: nonEmpty },
      },
    },
    unreadable: {
      type: 'array',
      items: {
        type: 'object',
        required: ['file', 'error'],
        additionalProperties: false,
        properties: { file: nonEmpty, error: nonEmpty },
      },
    },
    stateFormat: {
      type: 'object',
      required: ['state', 'formats', 'writtenBy', 'message'],
      additionalProperties: false,
      properties: {
        state: { enum: ['none', 'current', 'older', 'newer'] },
        formats: { type: ['object', 'null'], additionalProperties: { type: 'integer', minimum: 1 } },
        writtenBy: { type: ['string', 'null'] },
        message: nonEmpty,
      },
    },
    cluster: CLUSTER_JSON_SCHEMA,
  },
} as const;
