import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import { progress, UserError } from "../log";
import { ensureBaseImage } from "./image";
import { labelKey, labFiles, labNetwork, type LabOptions } from "./lab";

/*
 * The lab's private registry, as a site would run one: Debian's
 * docker-registry in a container on the lab's network (its own address,
 * .5), serving TLS with a certificate from a CA generated for the lab and
 * asking for a login (user edge-ha, a password generated for the lab). The
 * hosts trust that CA and log in through the stack's edge-ha:registries
 * (modules/registry-trust, the Docker providers' registryAuth), not through
 * insecure-registries. `lab down` removes it with the lab.
 */

const sh = $({ quiet: true });

export interface LabRegistry {
  /** HOST:PORT, as image references name it. */
  address: string;
  /** The CA certificate the hosts (and skopeo here) trust it by. */
  ca: string;
  username: string;
  password: string;
}

export const registryAddress = (lab: LabOptions) => `${lab.subnetPrefix}.5:5000`;
const container = (lab: LabOptions) => `edge-ha-${lab.name}-registry`;
const username = "edge-ha";

function registryFiles(lab: LabOptions) {
  const dir = path.join(labFiles(lab).dir, "registry");
  // The CA alone in its folder: skopeo's --dest-cert-dir reads every *.crt and *.key there.
  return { dir, trustDir: path.join(dir, "trust"), ca: path.join(dir, "trust", "ca.crt"), caKey: path.join(dir, "ca.key"), serverDir: path.join(dir, "server"), password: path.join(dir, "password") };
}

/** A CA for the lab, and the registry's certificate for its address signed by it (once). */
async function ensureCertificates(lab: LabOptions): Promise<void> {
  const f = registryFiles(lab);
  if (existsSync(path.join(f.serverDir, "registry.crt"))) return;
  mkdirSync(f.trustDir, { recursive: true });
  mkdirSync(f.serverDir, { recursive: true });
  const ip = registryAddress(lab).split(":")[0];
  await sh`openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj ${`/CN=edge-ha lab ${lab.name} CA`} -keyout ${f.caKey} -out ${f.ca}`;
  const key = path.join(f.serverDir, "registry.key");
  const csr = path.join(f.dir, "registry.csr");
  const ext = path.join(f.dir, "registry.ext");
  writeFileSync(ext, `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\n`);
  await sh`openssl req -newkey rsa:2048 -nodes -subj ${`/CN=${ip}`} -keyout ${key} -out ${csr}`;
  await sh`openssl x509 -req -in ${csr} -CA ${f.ca} -CAkey ${f.caKey} -CAcreateserial -days 3650 -extfile ${ext} -out ${path.join(f.serverDir, "registry.crt")}`;
}

/** Starts the lab's registry (building its image once) unless it runs; the lab must be up. */
export async function startRegistry(lab: LabOptions): Promise<LabRegistry> {
  const f = registryFiles(lab);
  const address = registryAddress(lab);
  const dockerfile = path.join(__dirname, "files", "registry.Dockerfile");
  const recipe = createHash("sha256").update(readFileSync(dockerfile)).update(readFileSync(path.join(__dirname, "files", "registry.yml")));
  const image = `edge-ha/lab-registry:${recipe.digest("hex").slice(0, 12)}`;
  const state = await $({ quiet: true, nothrow: true })`docker container inspect -f ${"{{.State.Running}} {{.Config.Image}}"} ${container(lab)}`;
  const login = () => ({ username, password: readFileSync(f.password, "utf8").trim() });
  if (state.stdout.trim() === `true ${image}` && existsSync(f.password)) return { address, ca: f.ca, ...login() };
  if ((await $({ quiet: true, nothrow: true })`docker network inspect ${labNetwork(lab)}`).exitCode !== 0) throw new UserError(`lab "${lab.name}" is not up: run edge-ha lab up first`);
  await ensureBaseImage();
  if ((await $({ quiet: true, nothrow: true })`docker image inspect ${image}`).exitCode !== 0) {
    progress(`building ${image} (Debian's docker-registry)`);
    await sh`docker build -q -t ${image} -f ${dockerfile} ${path.dirname(dockerfile)}`;
  }
  await ensureCertificates(lab);
  if (!existsSync(f.password)) writeFileSync(f.password, `${randomBytes(18).toString("base64url")}\n`, { mode: 0o600 });
  const htpasswd = await sh`docker run --rm --entrypoint htpasswd ${image} -Bbn ${username} ${login().password}`;
  writeFileSync(path.join(f.serverDir, "htpasswd"), htpasswd.stdout);
  await $({ quiet: true, nothrow: true })`docker rm -f ${container(lab)}`;
  progress(`starting the lab's registry at ${address}`);
  await sh`docker run -d --name ${container(lab)} --hostname registry --network ${labNetwork(lab)} --ip ${address.split(":")[0]} --label ${`${labelKey}=${lab.name}`} -v ${`${f.serverDir}:/certs:ro`} ${image}`;
  for (let i = 0; i < 50; i++) {
    if ((await $({ quiet: true, nothrow: true })`curl -sf --cacert ${f.ca} -u ${`${username}:${login().password}`} ${`https://${address}/v2/`}`).exitCode === 0) return { address, ca: f.ca, ...login() };
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new UserError(`the lab's registry did not answer at https://${address}/v2/ within 10 s; its log: docker logs ${container(lab)}`);
}

/** Copies a docker save archive into the lab's registry as NAME:TAG (skopeo, trusting the lab's CA, with the login); returns the full reference. */
export async function pushArchive(lab: LabOptions, archive: string, nameTag: string): Promise<string> {
  if (!existsSync(archive)) throw new UserError(`expected a docker save archive at ${archive}, found no file`);
  const r = await startRegistry(lab);
  const ref = `${r.address}/${nameTag}`;
  await sh`skopeo copy --quiet --dest-cert-dir ${registryFiles(lab).trustDir} --dest-creds ${`${r.username}:${r.password}`} ${`docker-archive:${archive}`} ${`docker://${ref}`}`;
  return ref;
}
