/** Docker's name for the driver behind a socket: its file name without `.sock`. */
export function driverName(socketPath: string): string {
  return socketPath.replace(/^.*\//, '').replace(/\.sock$/, '');
}
