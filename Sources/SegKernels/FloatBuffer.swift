#if canImport(Glibc)
internal import Glibc
#endif

/// An owned, 64-byte aligned, growable float32 buffer: the unit of planned scratch memory.
///
/// Growing reallocates only when the requested capacity exceeds the current one, so a
/// buffer reused across requests of the same shape never allocates again. Not thread-safe:
/// one buffer belongs to one inference session.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 16)
        self.pointer = FloatBuffer.allocate(self.capacity)
    }

    deinit {
        FloatBuffer.deallocate(pointer)
    }

    /// Makes room for at least `count` floats. Contents are not preserved when it grows.
    @discardableResult
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            FloatBuffer.deallocate(pointer)
            capacity = count
            pointer = FloatBuffer.allocate(count)
        }
        return pointer
    }

    /// Bytes held by this buffer.
    public var byteCount: Int { capacity * MemoryLayout<Float>.stride }

    /// Buffers of at least 2 MiB are aligned to 2 MiB and their whole 2 MiB chunks are marked for
    /// transparent huge pages (madvise; Debian's default THP mode): the first pass over a fresh
    /// workspace of a few hundred MB then takes one page fault per 2 MiB instead of one per 4 KiB.
    /// A tail shorter than 2 MiB keeps small pages, so no memory is cleared that is never used.
    static let hugePageBytes = 2 << 20

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = count * MemoryLayout<Float>.stride
        #if os(Linux)
        let huge = bytes >= hugePageBytes
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, huge ? hugePageBytes : 64, bytes) == 0, let raw else {
            fatalError("FloatBuffer: cannot allocate \(bytes) bytes")
        }
        if huge { _ = madvise(raw, bytes / hugePageBytes * hugePageBytes, MADV_HUGEPAGE) }
        return raw.bindMemory(to: Float.self, capacity: count)
        #else
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: count)
        #endif
    }

    private static func deallocate(_ pointer: UnsafeMutablePointer<Float>) {
        #if os(Linux)
        free(pointer)
        #else
        UnsafeMutableRawPointer(pointer).deallocate()
        #endif
    }
}
