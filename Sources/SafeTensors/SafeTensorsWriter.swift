import Foundation

/// One tensor to write: its name, shape and Float32 values (read during `write` only).
public struct TensorToWrite {
    public let name: String
    public let shape: [Int]
    public let values: UnsafeBufferPointer<Float>

    public init(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
        precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Writes safetensors files atomically: to a temporary file beside the target, flushed to disk,
/// then renamed over it, so a crash or a full disk never leaves a half-written file at `path`.
public enum SafeTensorsWriter {
    /// Writes `tensors` converted to `dtype` (F32, F16 or BF16), in name order.
    public static func write(
        _ tensors: [TensorToWrite], dtype: DType = .f32, metadata: [String: String] = ["format": "pt"],
        to path: String
    ) throws {
        precondition([.f32, .f16, .bf16].contains(dtype), "writing \(dtype.rawValue) is not supported")
        let sorted = tensors.sorted { $0.name < $1.name }
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for tensor in sorted {
            let bytes = tensor.values.count * dtype.byteSize
            header[tensor.name] = [
                "dtype": dtype.rawValue, "shape": tensor.shape, "data_offsets": [offset, offset + bytes],
            ]
            offset += bytes
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        headerBytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8))
        try atomicWrite(to: path) { handle in
            var length = UInt64(headerBytes.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: headerBytes)
            for tensor in sorted { try writeValues(tensor.values, dtype: dtype, to: handle) }
        }
    }

    private static func writeValues(_ values: UnsafeBufferPointer<Float>, dtype: DType, to handle: FileHandle)
        throws
    {
        let chunk = 1 << 20
        var start = 0
        while start < values.count {
            let end = min(start + chunk, values.count)
            var data = Data(count: (end - start) * dtype.byteSize)
            data.withUnsafeMutableBytes { raw in
                for i in start..<end {
                    let at = (i - start) * dtype.byteSize
                    switch dtype {
                    case .f32:
                        raw.storeBytes(
                            of: values[i].bitPattern.littleEndian, toByteOffset: at, as: UInt32.self)
                    case .bf16:
                        raw.storeBytes(
                            of: floatToBFloat16(values[i]).littleEndian, toByteOffset: at, as: UInt16.self)
                    default:
                        raw.storeBytes(
                            of: floatToFloat16(values[i]).littleEndian, toByteOffset: at, as: UInt16.self)
                    }
                }
            }
            try handle.write(contentsOf: data)
            start = end
        }
    }
}

/// Runs `body` on a temporary file beside `path`, flushes it to disk and renames it to `path`;
/// on any error the temporary file is removed and `path` is left as it was.
public func atomicWrite(to path: String, _ body: (FileHandle) throws -> Void) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let temporary =
        (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
        throw SafeTensorsError.writeFailed(path: path, reason: "cannot create \(temporary)")
    }
    do {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        defer { try? handle.close() }
        try body(handle)
        try handle.synchronize()
    } catch {
        try? FileManager.default.removeItem(atPath: temporary)
        throw SafeTensorsError.writeFailed(path: path, reason: describeFileError(error))
    }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(atPath: temporary)
        throw SafeTensorsError.writeFailed(path: path, reason: reason)
    }
}

/// Writes `data` to `path` atomically (see `atomicWrite`).
public func atomicWrite(_ data: Data, to path: String) throws {
    try atomicWrite(to: path) { try $0.write(contentsOf: data) }
}
