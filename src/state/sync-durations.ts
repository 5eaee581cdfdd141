// How long the state's syncs take (fsync and fdatasync of records, journals, the cluster intent log and their
// directories): the disk's share of every answer that waits for durability. One histogram for the process, which
// the metrics exporter reads.
import { DurationHistogram } from '../stats/duration-histogram';

/** From a fast SSD's tenth of a millisecond to a disk that stalls for seconds. */
export const SYNC_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export const syncDurations = new DurationHistogram(SYNC_BOUNDS);
