# Option declarations of the machine backends, so that network files using
# them evaluate. The backends' behaviour lives in nixops, not here.
{ lib, ... }:

let
  inherit (lib) mkOption types;
  opt = type: default: description: mkOption { inherit type default description; };
  # `anything` is missing in old nixpkgs.
  anything = types.anything or types.unspecified;
  anyOpt = default: description: opt anything default description;
  nullStr = description: opt (types.nullOr types.str) null description;
in
{
  options.deployment.virtualbox = {
    memorySize = opt types.int 512 "Memory of the VM in MiB.";
    vcpu = opt (types.nullOr types.int) null "Number of virtual CPUs.";
    headless = opt types.bool false "Whether to run the VM without a window.";
    vmFlags = opt (types.listOf types.str) [ ] "Extra flags for VBoxManage modifyvm.";
    disks = anyOpt { } "Disks of the VM.";
    sharedFolders = anyOpt { } "Folders shared with the VM.";
  };

  options.deployment.libvirtd = {
    memorySize = opt types.int 512 "Memory of the VM in MiB.";
    vcpu = opt types.int 1 "Number of virtual CPUs.";
    headless = opt types.bool false "Whether to run the VM without a graphical console.";
    baseImageSize = opt types.int 10 "Size of the base image in GiB.";
    baseImage = anyOpt null "The disk image the VM boots from.";
    storagePool = opt types.str "default" "The libvirt storage pool for the disk.";
    networks = anyOpt [ "default" ] "Libvirt networks the VM is attached to.";
    extraDevicesXML = opt types.lines "" "Extra XML inside the domain's <devices>.";
    extraDomainXML = opt types.lines "" "Extra XML inside the domain.";
    domainType = opt types.str "kvm" "The libvirt domain type.";
    URI = opt types.str "qemu:///system" "The libvirt connection URI.";
    cmdline = opt types.str "" "Kernel command line when booting a kernel directly.";
    kernel = nullStr "Kernel to boot directly.";
    initrd = nullStr "Initrd to boot directly.";
  };

  options.deployment.ec2 = {
    region = opt types.str "" "The AWS region.";
    zone = opt types.str "" "The availability zone.";
    instanceType = opt types.str "m1.small" "The EC2 instance type.";
    keyPair = opt types.str "" "The EC2 key pair name.";
    privateKey = opt types.str "" "Path of the private key of the key pair.";
    securityGroups = anyOpt [ "default" ] "Security groups of the instance.";
    securityGroupIds = anyOpt [ ] "Security group IDs of the instance (VPC).";
    subnetId = opt types.str "" "The VPC subnet.";
    ami = opt types.str "" "The AMI to launch.";
    accessKeyId = opt types.str "" "The access key ID (or profile) to use.";
    tags = opt (types.attrsOf types.str) { } "Tags of the instance.";
    ebsBoot = opt types.bool true "Whether the instance boots from EBS.";
    ebsInitialRootDiskSize = opt types.int 0 "Size of the root disk in GiB (0: the AMI's).";
    ebsOptimized = opt types.bool false "Whether the instance is EBS-optimized.";
    elasticIPv4 = anyOpt "" "Elastic IP to associate.";
    associatePublicIpAddress = opt types.bool false "Whether to get a public IP in a VPC.";
    blockDeviceMapping = anyOpt { } "Block devices of the instance.";
    instanceProfile = opt types.str "" "IAM instance profile.";
    placementGroup = opt types.str "" "Placement group.";
    spotInstancePrice = opt types.int 0 "Spot bid in cents (0: on demand).";
    tenancy = opt types.str "default" "Instance tenancy.";
    usePrivateIpAddress = opt types.bool false "Whether to connect over the private IP.";
  };
}
