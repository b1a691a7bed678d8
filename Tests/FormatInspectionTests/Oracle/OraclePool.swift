// The differential oracle's base images: what qemu-img 7.2 writes with each of its options, and the usual real-world
// layouts (partitioned disks, ISOs with an MBR or GPT in their system area, fixed VHDs of partitioned disks).
import Foundation
import StagingTestSupport

@testable import FormatInspection

/// One image qemu-img (or sfdisk, or xorriso) made, as the inspector must accept it.
struct BaseImage: Sendable {
    var name: String
    var bytes: [UInt8]
    /// The format the inspector must find, from the name's prefix.
    var format: ImageFormat
}

enum OraclePool {
    /// Made once per pool directory; each maker prints its image's name, or "FAILED name: why". The random data is
    /// seeded, but qemu writes random ids (vmdk CID, vhdx and vdi UUIDs) and timestamps: a replay is exact only on a
    /// machine that keeps the pool.
    static let script = #"""
        # Each line of the output: name. A failed maker prints "FAILED name". Tried up to ten times, a moment
        # apart: qemu's LUKS key derivation times itself and gives up ("Unable to get accurate CPU usage") on a
        # busy machine.
        image() {
          name=$1; shift
          for attempt in 1 2 3 4 5 6 7 8 9 10; do ( eval "$*" ) >/dev/null 2>make.err && { echo "$name"; return; }; sleep 0.2; done
          echo "FAILED $name: $(head -c 300 make.err | tr '\n' ' ')"
        }
        python3 -c "import random; random.seed(7); open('data.raw', 'wb').write(random.randbytes(3 << 20))"
        qemu-img create -q -f raw zeros.raw 3M
        sfdisk_gpt() { printf 'label: gpt\nstart=2048, size=2048, type=L\nstart=4096, type=L\n' | sfdisk -q "$1"; }
        sfdisk_mbr() { printf 'label: dos\nstart=2048, size=2048, type=83\nstart=4096, type=83\n' | sfdisk -q "$1"; }
        image raw 'cp data.raw raw && truncate -s 3000000 raw'
        image raw-zero 'cp zeros.raw raw-zero'
        image gpt 'qemu-img create -q -f raw gpt 4M && sfdisk_gpt gpt'
        image gpt-odd 'qemu-img create -q -f raw gpt-odd 5000192 && printf "label: gpt\nstart=2048, size=100\n" | sfdisk -q gpt-odd'
        image mbr 'qemu-img create -q -f raw mbr 4M && sfdisk_mbr mbr'
        image mbr-extended 'qemu-img create -q -f raw mbr-extended 8M && printf "label: dos\nstart=2048, size=2048, type=83\nstart=4096, type=5\nstart=6144, size=1024, type=83\n" | sfdisk -q mbr-extended'
        for r in 1 2 8 64; do image qcow2-refcount$r "qemu-img create -q -f qcow2 -o refcount_bits=$r qcow2-refcount$r 10M"; done
        for v in 0.10 1.1; do
          for c in 512 4096 65536 2M; do image qcow2-$v-$c "qemu-img create -q -f qcow2 -o compat=$v,cluster_size=$c qcow2-$v-$c 24M"; done
          image qcow2-$v-data "qemu-img convert -f raw -O qcow2 -o compat=$v data.raw qcow2-$v-data"
          image qcow2-$v-compressed "qemu-img convert -c -f raw -O qcow2 -o compat=$v data.raw qcow2-$v-compressed"
        done
        for c in 16384 65536 2M; do image qcow2-extl2-$c "qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$c qcow2-extl2-$c 24M"; done
        image qcow2-extl2-data 'qemu-img convert -f raw -O qcow2 -o extended_l2=on,cluster_size=32768 data.raw qcow2-extl2-data'
        image qcow2-zstd 'qemu-img create -q -f qcow2 -o compression_type=zstd qcow2-zstd 24M'
        image qcow2-zstd-compressed 'qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd data.raw qcow2-zstd-compressed'
        image qcow2-lazy 'qemu-img create -q -f qcow2 -o lazy_refcounts=on qcow2-lazy 24M'
        image qcow2-luks 'qemu-img create -q -f qcow2 --object secret,id=s,data=abc -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 qcow2-luks 8M'
        image qcow2-aes 'qemu-img create -q -f qcow2 --object secret,id=s,data=abc -o encrypt.format=aes,encrypt.key-secret=s qcow2-aes 8M'
        for p in metadata falloc full; do image qcow2-prealloc-$p "qemu-img create -q -f qcow2 -o preallocation=$p qcow2-prealloc-$p 3M"; done
        image qcow2-odd 'qemu-img create -q -f qcow2 qcow2-odd 10000896'
        image qcow2-gpt 'qemu-img convert -f raw -O qcow2 gpt qcow2-gpt'
        image qed 'qemu-img create -q -f qed qed 24M'
        image qed-data 'qemu-img convert -f raw -O qed data.raw qed-data'
        for c in 4096 65536 1M; do image qed-cluster$c "qemu-img create -q -f qed -o cluster_size=$c qed-cluster$c 24M"; done
        image qed-table16 'qemu-img create -q -f qed -o table_size=16 qed-table16 24M'
        for s in monolithicSparse streamOptimized; do
          image vmdk-$s "qemu-img create -q -f vmdk -o subformat=$s vmdk-$s 24M"
          image vmdk-$s-data "qemu-img convert -f raw -O vmdk -o subformat=$s data.raw vmdk-$s-data"
        done
        image vmdk-compat6 'qemu-img create -q -f vmdk -o compat6=on vmdk-compat6 24M'
        image vmdk-hw 'qemu-img create -q -f vmdk -o hwversion=6 vmdk-hw 24M'
        for a in ide buslogic lsilogic legacyESX; do image vmdk-adapter-$a "qemu-img create -q -f vmdk -o adapter_type=$a vmdk-adapter-$a 24M"; done
        image vmdk-zeroed 'qemu-img create -q -f vmdk -o zeroed_grain=on vmdk-zeroed 24M'
        image vmdk-odd 'qemu-img create -q -f vmdk vmdk-odd 10000896'
        image vmdk-toc 'qemu-img create -q -f vmdk -o toolsversion=12345 vmdk-toc 24M'
        for s in dynamic fixed; do
          image vpc-$s "qemu-img create -q -f vpc -o subformat=$s vpc-$s 4M"
          image vpc-$s-force "qemu-img create -q -f vpc -o subformat=$s,force_size=on vpc-$s-force 5000192"
          image vpc-$s-odd "qemu-img create -q -f vpc -o subformat=$s vpc-$s-odd 5000192"
          image vpc-$s-data "qemu-img convert -f raw -O vpc -o subformat=$s data.raw vpc-$s-data"
          image vpc-$s-gpt "qemu-img convert -f raw -O vpc -o subformat=$s gpt vpc-$s-gpt"
          image vpc-$s-mbr "qemu-img convert -f raw -O vpc -o subformat=$s mbr vpc-$s-mbr"
        done
        # LUKS (a fast key derivation: the pool is made once); qemu-img info reads the header without the secret.
        luks() { qemu-img create -q -f luks --object secret,id=s,data=abc -o key-secret=s,iter-time=10$2 "$1" 3M; }
        image luks 'luks luks'
        image luks-aes128-cbc-essiv 'luks luks-aes128-cbc-essiv ,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256'
        image luks-twofish-sha512 'luks luks-twofish-sha512 ,cipher-alg=twofish-256,hash-alg=sha512'
        image luks-data 'qemu-img convert -f raw -O luks --object secret,id=s,data=abc -o key-secret=s,iter-time=10 data.raw luks-data'
        for s in dynamic fixed; do image vhdx-$s "qemu-img create -q -f vhdx -o subformat=$s vhdx-$s 4M"; done
        for b in 1M 8M 32M; do image vhdx-block$b "qemu-img create -q -f vhdx -o block_size=$b vhdx-block$b 24M"; done
        image vhdx-log4M 'qemu-img create -q -f vhdx -o log_size=4M vhdx-log4M 24M'
        image vhdx-nozero 'qemu-img create -q -f vhdx -o block_state_zero=off vhdx-nozero 24M'
        image vhdx-data 'qemu-img convert -f raw -O vhdx data.raw vhdx-data'
        image vhdx-odd 'qemu-img create -q -f vhdx vhdx-odd 10000896'
        for s in off on; do image vdi-static-$s "qemu-img create -q -f vdi -o static=$s vdi-static-$s 6M"; done
        image vdi-data 'qemu-img convert -f raw -O vdi data.raw vdi-data'
        image vdi-odd 'qemu-img create -q -f vdi vdi-odd 5000192'
        mkdir -p isotree && echo hello > isotree/hello.txt && head -c 100000 /dev/urandom > isotree/blob
        head -c 1474560 /dev/zero > efi.img
        image iso 'xorriso -as mkisofs -quiet -o iso isotree'
        image iso-joliet 'xorriso -as mkisofs -quiet -J -R -V ORACLE -o iso-joliet isotree'
        image iso-mbr 'xorriso -as mkisofs -quiet -partition_offset 16 -o iso-mbr isotree'
        image iso-protective 'xorriso -as mkisofs -quiet --protective-msdos-label -o iso-protective isotree'
        image iso-gpt 'xorriso -as mkisofs -quiet -append_partition 2 0xef efi.img -appended_part_as_gpt -o iso-gpt isotree'
        image iso-mbr-appended 'xorriso -as mkisofs -quiet -append_partition 2 0xef efi.img -o iso-mbr-appended isotree'
        image iso-hybrid-mbr 'head -c 432 /dev/zero > mbrcode && mkdir -p isotree/boot && head -c 2048 /dev/zero > isotree/boot/boot.img && xorriso -as mkisofs -quiet -isohybrid-mbr mbrcode -b boot/boot.img -no-emul-boot -boot-load-size 4 -o iso-hybrid-mbr isotree'
        """#

    /// Prefixes of the makers' names and the format each must be found as; longest first.
    static let formats: [(String, ImageFormat)] = [
        ("vhdx", .vhdx), ("vpc", .vhd), ("qcow2", .qcow2), ("qed", .qed), ("vmdk", .vmdk), ("vdi", .vdi),
        ("iso", .iso), ("gpt", .gpt), ("mbr", .mbr), ("raw", .raw), ("luks", .luks),
    ]

    /// Where the pool is kept between runs: a root-only directory named by the script's and qemu-img's hash.
    static func directory() throws -> String {
        let version = try run(["qemu-img", "--version"]).stdout
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in (script + version).utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return "/tmp/stagingfs-oracle/pool-\(String(hash, radix: 16))"
    }

    /// The pool, made on first use (about 15 s); a maker that fails is a set-up error naming it.
    static func load() throws -> [BaseImage] {
        let directory = try directory()
        let names = directory + "/names"
        if !FileManager.default.fileExists(atPath: names) {
            let building = directory + ".building-\(getpid())"
            try? FileManager.default.removeItem(atPath: building)
            try FileManager.default.createDirectory(atPath: building, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try script.write(toFile: building + "/pool.sh", atomically: true, encoding: .utf8)
            let result = try run(["sh", "-c", "cd '\(building)' && bash pool.sh > names.txt && mv names.txt names"])
            let made = (try? String(contentsOfFile: building + "/names", encoding: .utf8)) ?? ""
            let failed = made.split(separator: "\n").filter { $0.hasPrefix("FAILED") }
            guard result.succeeded, failed.isEmpty else {
                throw TestSetupError(
                    "making the oracle's base images failed (are qemu-utils, fdisk and xorriso installed? scripts/install-deps): \(failed) \(result)")
            }
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.moveItem(atPath: building, toPath: directory)
        }
        return try String(contentsOfFile: names, encoding: .utf8).split(separator: "\n").map { line in
            let name = String(line)
            guard let format = formats.first(where: { name.hasPrefix($0.0) })?.1 else { throw TestSetupError("no format for base image \(name)") }
            return BaseImage(name: name, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))), format: format)
        }
    }
}
