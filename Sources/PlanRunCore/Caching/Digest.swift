import Crypto

/// SHA-256 helpers; digests are lowercase hex throughout planrun.
package enum Digest {
    package static func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
        var hasher = SHA256()
        if bytes.withContiguousStorageIfAvailable({ hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }) == nil {
            hasher.update(data: Array(bytes))
        }
        return hex(hasher.finalize())
    }

    /// A Crypto digest through its bytes: iterating a `Digest` copies it
    /// into a new array each time.
    package static func hex(_ digest: some Crypto.Digest) -> String {
        digest.withUnsafeBytes { hex(UnsafeRawBufferPointer($0)) }
    }

    package static func hex(_ digest: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: digest.count * 2) { out in
            var i = 0
            for byte in digest {
                out[i] = nibble(byte >> 4)
                out[i + 1] = nibble(byte & 0xf)
                i += 2
            }
            return i
        }
    }

    @inline(__always)
    private static func nibble(_ n: UInt8) -> UInt8 {
        n < 10 ? UInt8(ascii: "0") + n : UInt8(ascii: "a") - 10 + n
    }
}
