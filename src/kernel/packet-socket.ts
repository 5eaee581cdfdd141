// The host's one raw L2 socket (AF_PACKET, every interface): ARP, DHCP (UDP 67/68) and IPv6 neighbour discovery
// frames only, each tagged with the interface it was seen on. A small N-API addon (src/kernel/native/packet_socket.c,
// built by scripts/build-native.sh) watches it on the event loop; nothing here knows Docker or DHCP beyond that
// filter. PacketTap (packet-tap.ts) shares it among its users.
import { existsSync } from 'node:fs';
import path from 'node:path';

export interface ReceivedFrame {
  ifindex: number;
  /** Sent by this host (our own frames, and those of macvlans on a parent we listen on). */
  outgoing: boolean;
  frame: Buffer;
}

interface NativeSocket {
  send(ifindex: number, frame: Buffer): void;
  close(): void;
  setRef(keepAlive: boolean): void;
  membership(ifindex: number, mac: Buffer, add: boolean): void;
}
type NativeCallback = (error: Error | null, frame?: Buffer, ifindex?: number, outgoing?: boolean) => void;
interface NativeModule {
  PacketSocket: new (onFrame: NativeCallback) => NativeSocket;
}

const addonName = 'build/packet_socket.node';

function macBuffer(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac))
    throw new RangeError(`${mac} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return Buffer.from(mac.replace(/:/g, ''), 'hex');
}

/** The addon tells unicast from group MACs by the group bit: a unicast call must not join a group, nor the reverse. */
function unicastBuffer(mac: string): Buffer {
  const bytes = macBuffer(mac);
  if (bytes[0]! & 1) throw new RangeError(`${mac} is a group (multicast) MAC, not a unicast one`);
  return bytes;
}

function groupBuffer(mac: string): Buffer {
  const bytes = macBuffer(mac);
  if (!(bytes[0]! & 1)) throw new RangeError(`${mac} is a unicast MAC, not a group (multicast) one`);
  return bytes;
}

function loadAddon(): NativeModule {
  // The addon sits in build/ at the package root, wherever this file is compiled to.
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const candidate = path.join(dir, addonName);
    if (existsSync(candidate)) return require(candidate) as NativeModule;
  }
  throw new Error(`the packet socket addon ${addonName} is missing: run npm run build (it needs a C compiler)`);
}

export class PacketSocket {
  private readonly native: NativeSocket;
  private closed = false;

  /** Opens the socket; throws (EPERM) without CAP_NET_RAW. Errors after opening go to onError. */
  constructor(onFrame: (received: ReceivedFrame) => void, onError: (error: Error) => void) {
    const { PacketSocket: Native } = loadAddon();
    this.native = new Native((error, frame, ifindex, outgoing) => {
      try {
        if (error) onError(error);
        else onFrame({ frame: frame!, ifindex: ifindex!, outgoing: outgoing! });
      } catch (thrown) {
        onError(thrown instanceof Error ? thrown : new Error(String(thrown)));
      }
    });
  }

  /** Sends a whole Ethernet frame as it is on interface `ifindex`; throws when the kernel refuses it. */
  send(ifindex: number, frame: Buffer): void {
    this.native.send(ifindex, frame);
  }

  /**
   * Lets frames to `mac` in on interface `ifindex` while this socket is open (the kernel adds it to the NIC's
   * unicast filter, as a macvlan does for its own MAC): replies to an address no link owns yet are not dropped by
   * the hardware. Each call needs one dropUnicast; close() drops them all.
   */
  addUnicast(ifindex: number, mac: string): void {
    this.native.membership(ifindex, unicastBuffer(mac), true);
  }

  dropUnicast(ifindex: number, mac: string): void {
    this.native.membership(ifindex, unicastBuffer(mac), false);
  }

  /** Lets frames to the group MAC `mac` in on interface `ifindex` while the socket is open; one dropMulticast each. */
  addMulticast(ifindex: number, mac: string): void {
    this.native.membership(ifindex, groupBuffer(mac), true);
  }

  dropMulticast(ifindex: number, mac: string): void {
    this.native.membership(ifindex, groupBuffer(mac), false);
  }

  /** Whether an open socket keeps the process alive (it does by default). */
  keepAlive(keep: boolean): void {
    if (!this.closed) this.native.setRef(keep);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}
