#!/bin/sh
# Build a state file of D deployments with M machines each (about 12 attributes per
# machine), in NixOps' format, with the sqlite3 CLI.
#
#   make-big-state.sh OUT.nixops [D=100] [M=100]
set -eu
out=$1
d=${2:-100}
m=${3:-100}
rm -f "$out" "$out-wal" "$out-shm"
sqlite3 "$out" <<SQL
create table if not exists SchemaVersion(
  version integer not null
);
insert into SchemaVersion(version) values (3);

create table if not exists Deployments(
  uuid text primary key
);

create table if not exists DeploymentAttrs(
  deployment text not null,
  name text not null,
  value text not null,
  primary key(deployment, name),
  foreign key(deployment) references Deployments(uuid) on delete cascade
);

create table if not exists Resources(
  id integer primary key autoincrement,
  deployment text not null,
  name text not null,
  type text not null,
  foreign key(deployment) references Deployments(uuid) on delete cascade
);

create table if not exists ResourceAttrs(
  machine integer not null,
  name text not null,
  value text not null,
  primary key(machine, name),
  foreign key(machine) references Resources(id) on delete cascade
);

begin;
with recursive n(i) as (select 0 union all select i + 1 from n where i < $d - 1)
insert into Deployments(uuid) select printf('%08x-60f5-11e9-8a3c-%012x', i, i) from n;

insert into DeploymentAttrs select uuid, 'name', 'net-' || substr(uuid, 1, 8) from Deployments;
insert into DeploymentAttrs select uuid, 'description', 'Benchmark network ' || substr(uuid, 1, 8) from Deployments;
insert into DeploymentAttrs select uuid, 'nixExprs', '["/home/alice/net-' || substr(uuid, 1, 8) || '.nix"]' from Deployments;
insert into DeploymentAttrs select uuid, 'nixPath', '["nixpkgs=/home/alice/nixpkgs"]' from Deployments;
insert into DeploymentAttrs select uuid, 'configsPath', '/nix/store/0h9v6x3mygm2l7v2q7nvs2i8l1s2b3c4-nixops-machines' from Deployments;
insert into DeploymentAttrs select uuid, 'args', '{"n": "42"}' from Deployments;

with recursive n(i) as (select 0 union all select i + 1 from n where i < $m - 1)
insert into Resources(deployment, name, type)
  select uuid, 'machine-' || i, 'none'
  from Deployments, n order by uuid, i;

insert into ResourceAttrs select id, 'state', '3' from Resources;
insert into ResourceAttrs select id, 'index', cast(id % $m as text) from Resources;
insert into ResourceAttrs select id, 'creationTime', '1555500000' from Resources;
insert into ResourceAttrs select id, 'targetHost', '10.' || (id / 65536) || '.' || (id / 256 % 256) || '.' || (id % 256) from Resources;
insert into ResourceAttrs select id, 'vmId', 'nixops-' || deployment || '-' || name from Resources;
insert into ResourceAttrs select id, 'sshPinged', '1' from Resources;
insert into ResourceAttrs select id, 'toplevel', '/nix/store/7v2q7nvs2i8l1s2b3c40h9v6x3mygm2l-nixos-system-' || name || '-19.03' from Resources;
insert into ResourceAttrs select id, 'configsPath', '/nix/store/0h9v6x3mygm2l7v2q7nvs2i8l1s2b3c4-nixops-machines' from Resources;
insert into ResourceAttrs select id, 'stateVersion', '19.03' from Resources;
insert into ResourceAttrs select id, 'keys', '{"secret": {"destDir": "/run/keys", "group": "root", "permissions": "0600", "text": "s3cret", "user": "root"}}' from Resources;
insert into ResourceAttrs select id, 'none.sshPrivateKey', '-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
-----END OPENSSH PRIVATE KEY-----' from Resources;
insert into ResourceAttrs select id, 'publicHostKey', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOf' || name from Resources;
insert into ResourceAttrs select id, 'none.sshPublicKey', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFx NixOps client key for ' || name from Resources;
commit;
SQL
