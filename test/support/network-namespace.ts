import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Why network-namespace scenarios cannot run here (not root, `ip` or `tc` missing, namespaces refused), or
 * undefined when they can; tests pass it to node:test's `skip`.
 */
export async function networkNamespacesUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (ip netns, tc)';
  for (const tool of ['ip', 'tc']) {
    if (
      !(await run(tool, ['-V']).then(
        () => true,
        () => false,
      ))
    )
      return `\`${tool}\` (iproute2) is not installed`;
  }
  const probe = `rc-probe-${process.pid}`;
  try {
    await run('ip', ['netns', 'add', probe]);
  } catch (err) {
    return `\`ip netns add\` failed: ${(err as Error).message.trim()}`;
  }
  try {
    await run('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'blackhole']);
  } catch (err) {
    return `the kernel has no blackhole qdisc (\`tc qdisc add … blackhole\` failed: ${(err as Error).message.trim()})`;
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => {});
  }
  return undefined;
}

/** One veth pair between the host and the namespace, in a private /30: `hostAddress` on the host's end, `address` on the namespace's. */
export interface VethLink {
  name: string;
  hostDevice: string;
  device: string;
  hostAddress: string;
  address: string;
}

/**
 * A network namespace of the test's own, joined to the host by veth pairs in 10.213.<n>.0/24 (n from the test's
 * pid), which exists only between these two ends on this machine: nothing is routed anywhere else. cut() drops every
 * packet of one link in both directions — the `blackhole` qdisc on both ends, which tells the sender nothing (as
 * netem loss 100 % would; netem is not in every kernel): a partition, not a refused connection. heal() lets packets
 * through again. remove() deletes the namespace and with it every veth pair.
 */
export class NetworkNamespace {
  readonly links = new Map<string, VethLink>();
  private readonly subnet = 10 + (process.pid % 240);

  private constructor(readonly name: string) {}

  static async create(): Promise<NetworkNamespace> {
    await removeLeftovers();
    const ns = new NetworkNamespace(`rc-faults-${process.pid}`);
    await run('ip', ['netns', 'add', ns.name]);
    await ns.exec(['ip', 'link', 'set', 'lo', 'up']).catch(async (err) => {
      await ns.remove();
      throw err;
    });
    return ns;
  }

  /** `ip netns exec <name> <command…>`, for a command run inside the namespace. */
  wrap(command: string[]): string[] {
    return ['ip', 'netns', 'exec', this.name, ...command];
  }

  async exec(command: string[]): Promise<void> {
    const [file, ...args] = this.wrap(command);
    await run(file!, args);
  }

  /** Adds the n-th link (0–63): addresses 10.213.<subnet>.<4n+1> (host) and .<4n+2> (namespace). */
  async addLink(name: string, n: number): Promise<VethLink> {
    const base = `10.213.${this.subnet}`;
    const link: VethLink = {
      name,
      // Interface names are at most 15 characters.
      hostDevice: `rch${process.pid % 1_000_000}${n}`,
      device: `rcn${process.pid % 1_000_000}${n}`,
      hostAddress: `${base}.${4 * n + 1}`,
      address: `${base}.${4 * n + 2}`,
    };
    await run('ip', ['link', 'add', link.hostDevice, 'type', 'veth', 'peer', 'name', link.device, 'netns', this.name]);
    await run('ip', ['addr', 'add', `${link.hostAddress}/30`, 'dev', link.hostDevice]);
    await run('ip', ['link', 'set', link.hostDevice, 'up']);
    await this.exec(['ip', 'addr', 'add', `${link.address}/30`, 'dev', link.device]);
    await this.exec(['ip', 'link', 'set', link.device, 'up']);
    this.links.set(name, link);
    return link;
  }

  private link(name: string): VethLink {
    const link = this.links.get(name);
    if (!link) throw new Error(`NetworkNamespace: no link "${name}" (links: ${[...this.links.keys()].join(', ')})`);
    return link;
  }

  /** Drops every packet on the link, both ways. */
  async cut(name: string): Promise<void> {
    const link = this.link(name);
    await run('tc', ['qdisc', 'add', 'dev', link.hostDevice, 'root', 'blackhole']);
    await this.exec(['tc', 'qdisc', 'add', 'dev', link.device, 'root', 'blackhole']);
  }

  async heal(name: string): Promise<void> {
    const link = this.link(name);
    await run('tc', ['qdisc', 'del', 'dev', link.hostDevice, 'root']);
    await this.exec(['tc', 'qdisc', 'del', 'dev', link.device, 'root']);
  }

  /** Deletes the namespace; its veth ends go with it, and so do their host peers. Safe to call twice. */
  async remove(): Promise<void> {
    await run('ip', ['netns', 'del', this.name]).catch(() => {});
    for (const link of this.links.values()) await run('ip', ['link', 'del', link.hostDevice]).catch(() => {});
  }
}

/**
 * Namespaces of earlier runs that were killed before their clean-up (named after a test process that is gone): their
 * host-side veth ends would hold the same addresses.
 */
async function removeLeftovers(): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const [, name, pid] of stdout.matchAll(/^(rc-faults-(\d+))\b/gm)) {
    if (!isAlive(Number(pid))) await run('ip', ['netns', 'del', name!]).catch(() => {});
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
