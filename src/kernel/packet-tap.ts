// One packet socket shared by its users (the DHCP clients, the address probes): opened when the first joins, closed
// when the last leaves, each received frame handed to the users that asked for its ethertype. Every ARP frame of the
// host is then copied to user space once, however many users look at it.
import { PacketSocket, type ReceivedFrame } from './packet-socket';

export interface TapUser {
  /** The ethertypes it wants (0x0806 ARP, 0x0800 IPv4, 0x86dd IPv6). */
  ethertypes: readonly number[];
  frame(received: ReceivedFrame): void;
}

/** What a user may do on the shared socket. Memberships are counted per MAC: each add needs its own drop. */
export type TapLink = Pick<PacketSocket, 'send' | 'addUnicast' | 'dropUnicast' | 'addMulticast' | 'dropMulticast'>;

export interface TapHandle extends TapLink {
  leave(): void;
}

type Opener = (onFrame: (received: ReceivedFrame) => void, onError: (error: Error) => void) => PacketSocket;

export class PacketTap {
  private socket: PacketSocket | undefined;
  private readonly users = new Map<number, Set<TapUser>>();
  private joined = 0;

  constructor(
    private readonly onError: (error: Error) => void,
    private readonly open: Opener = (onFrame, onError) => new PacketSocket(onFrame, onError),
  ) {}

  /** Joins `user`, opening the socket if it is the first; throws (EPERM without CAP_NET_RAW) when it cannot open. */
  join(user: TapUser): TapHandle {
    const socket = (this.socket ??= this.open(
      (received) => this.deliver(received),
      (error) => this.onError(error),
    ));
    for (const type of user.ethertypes) {
      let set = this.users.get(type);
      if (!set) this.users.set(type, (set = new Set()));
      set.add(user);
    }
    this.joined++;
    let left = false;
    return {
      send: (ifindex, frame) => socket.send(ifindex, frame),
      addUnicast: (ifindex, mac) => socket.addUnicast(ifindex, mac),
      dropUnicast: (ifindex, mac) => socket.dropUnicast(ifindex, mac),
      addMulticast: (ifindex, mac) => socket.addMulticast(ifindex, mac),
      dropMulticast: (ifindex, mac) => socket.dropMulticast(ifindex, mac),
      leave: () => {
        if (left) return;
        left = true;
        this.leave(user);
      },
    };
  }

  private leave(user: TapUser): void {
    for (const type of user.ethertypes) this.users.get(type)?.delete(user);
    if (--this.joined > 0) return;
    this.socket?.close();
    this.socket = undefined;
  }

  private deliver(received: ReceivedFrame): void {
    if (received.frame.length < 14) return;
    const users = this.users.get(received.frame.readUInt16BE(12));
    if (!users) return;
    for (const user of users) {
      try {
        user.frame(received);
      } catch (error) {
        this.onError(error instanceof Error ? error : new Error(String(error)));
      }
    }
  }
}
