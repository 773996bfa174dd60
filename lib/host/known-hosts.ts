/*
 * known_hosts files: the host keys edge-ha trusts, and only those.
 */

/** Host key types in the order edge-ha prefers them when known_hosts has several for a host. */
const keyPreference = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

/** The host's key from a known_hosts text (`TYPE BASE64`), or undefined when it has none for the host. */
export function hostKeyFrom(knownHosts: string, address: string, port: number): string | undefined {
  const names = port === 22 ? [address, `[${address}]:22`] : [`[${address}]:${port}`];
  const keys = knownHosts
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && !f[0].startsWith("#") && !f[0].startsWith("@") && f[0].split(",").some((n) => names.includes(n)))
    .map((f) => `${f[1]} ${f[2]}`);
  const rank = (key: string) => {
    const i = keyPreference.indexOf(key.split(" ")[0]);
    return i < 0 ? keyPreference.length : i;
  };
  return keys.sort((a, b) => rank(a) - rank(b))[0];
}

/** The name a known_hosts line gives a host: its address, or [address]:port off port 22. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}
