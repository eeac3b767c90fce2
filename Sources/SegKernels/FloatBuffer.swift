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
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    /// Makes room for at least `count` floats. Contents are not preserved when it grows.
    @discardableResult
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            UnsafeMutableRawPointer(pointer).deallocate()
            capacity = count
            pointer = FloatBuffer.allocate(count)
        }
        return pointer
    }

    /// Bytes held by this buffer.
    public var byteCount: Int { capacity * MemoryLayout<Float>.stride }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: count)
    }
}
