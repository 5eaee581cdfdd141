// The formats of the driver's records (networks/<id>.json, endpoints/<id>.json), and how an older record becomes
// a current one. docs/state.md lists them. A new format is one step: bump `version` and add its upgrade, e.g. a
// field that older records lack, with the value they meant (as format 3 gave network records their `kind`).
import { recordFiles, type RecordKind } from '../state/record-store';
import type { RecordFormat } from '../state/record-format';
import { endpointRecordProblem } from './endpoint-naming';
import { networkRecordProblem } from './network-options';

/**
 * 1: tsmacvlan 0.1.0, no `format` field. 2: the `format` field. 3: the link kind (`kind`: macvlan or ipvlan, with an
 * ipvlan's `flag`); every network before it was macvlan.
 */
export const NETWORK_RECORD_FORMAT: RecordFormat = {
  name: 'network record',
  version: 3,
  upgrades: { 2: (record) => record, 3: (record) => ({ kind: 'macvlan', ...record }) },
};

/**
 * 1: tsmacvlan 0.1.0, no `format` field. 2: the `format` field. The DHCP lease (`lease`) is part of the record.
 * 3: the DHCPv6 lease (`dhcp6`), which no older record has.
 */
export const ENDPOINT_RECORD_FORMAT: RecordFormat = {
  name: 'endpoint record',
  version: 3,
  upgrades: { 2: (record) => record, 3: (record) => record },
};

export const NETWORK_RECORDS: RecordKind = { format: NETWORK_RECORD_FORMAT, check: networkRecordProblem };
export const ENDPOINT_RECORDS: RecordKind = { format: ENDPOINT_RECORD_FORMAT, check: endpointRecordProblem };

/** The state dirs' record files, for the start-up migration and the readers (see state/migrate.ts). */
export const NETWORK_RECORD_FILES = recordFiles('network-record', 'networks', NETWORK_RECORDS);
export const ENDPOINT_RECORD_FILES = recordFiles('endpoint-record', 'endpoints', ENDPOINT_RECORDS);
