#!/usr/bin/env bash
# A stand-in for mcr.microsoft.com/dotnet/aspnet:10.0, built from Debian packages and this machine's own .NET
# runtime, written as an OCI image layout. Only for machines that cannot reach mcr.microsoft.com (this CI): the
# product images use Microsoft's chiseled images (Directory.Build.targets). Like Microsoft's image it has the .NET
# and ASP.NET Core runtimes under /usr/share/dotnet, `dotnet` on PATH, ICU, OpenSSL, CA certificates, tzdata and
# the non-root user app (UID 1654). Needs root, debootstrap and umoci; the layout is cached, keyed on the Debian
# release and the runtime version, so only the first run pays (about two minutes).
#
# usage: base-image.sh OCI_LAYOUT_DIR   → prints OCI_LAYOUT_DIR:TAG
set -euo pipefail

layout=${1:?usage: base-image.sh OCI_LAYOUT_DIR}
release=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
runtime=$(ls "$dotnet_root/shared/Microsoft.AspNetCore.App" | sort -V | tail -1)
tag="aspnet-$runtime-$release"

if [ -f "$layout/index.json" ] && grep -q "\"$tag\"" "$layout/index.json"; then
  echo "$layout:$tag"
  exit 0
fi

work=$(mktemp -d /tmp/chatstack-base-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

debootstrap --variant=minbase --include=libicu72,libssl3,ca-certificates,tzdata "$release" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
chroot "$work/rootfs" groupadd --gid 1654 app
chroot "$work/rootfs" useradd --uid 1654 --gid 1654 --create-home --shell /usr/sbin/nologin app
# What a runtime image never uses.
rm -rf "$work/rootfs"/var/cache/apt/* "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/usr/share/doc/* \
  "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/info/* "$work/rootfs"/var/log/*

netcore=$(ls "$dotnet_root/shared/Microsoft.NETCore.App" | sort -V | tail -1)
mkdir -p "$work/rootfs/usr/share/dotnet/shared/Microsoft.NETCore.App" "$work/rootfs/usr/share/dotnet/shared/Microsoft.AspNetCore.App"
cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$work/rootfs/usr/share/dotnet/"
cp -a "$dotnet_root/shared/Microsoft.NETCore.App/$netcore" "$work/rootfs/usr/share/dotnet/shared/Microsoft.NETCore.App/"
cp -a "$dotnet_root/shared/Microsoft.AspNetCore.App/$runtime" "$work/rootfs/usr/share/dotnet/shared/Microsoft.AspNetCore.App/"
ln -s /usr/share/dotnet/dotnet "$work/rootfs/usr/bin/dotnet"

[ -f "$layout/index.json" ] || umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
cp -a "$work/rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$layout:$tag" "$work/bundle"
umoci config --image "$layout:$tag" --os linux --architecture amd64 --config.user 1654 --config.workingdir /app \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env APP_UID=1654 --config.env DOTNET_RUNNING_IN_CONTAINER=true --config.env ASPNETCORE_HTTP_PORTS=8080 \
  --config.env DOTNET_VERSION="$netcore" --config.env ASPNET_VERSION="$runtime"
umoci gc --layout "$layout"
echo "$layout:$tag"
