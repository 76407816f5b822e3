import Foundation

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Equatable, Sendable {
    public let dtype: DType
    public let shape: [Int]
    /// Byte range within the data section (after the 8-byte length and the header).
    public let dataRange: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A `.safetensors` file, memory-mapped, with its header parsed and checked.
///
/// Layout (huggingface/safetensors README): an 8-byte little-endian header length n, n bytes of
/// JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the
/// data. Every offset is checked against the file before any tensor is read.
///
///     let file = try SafeTensorsFile(path: "model.safetensors")
///     let embedding = try file.floats("model.embed_tokens.weight")
public struct SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError.unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        guard data.count >= 8 else {
            throw SafeTensorsError.truncated(
                path: path, reason: "\(data.count) bytes, fewer than the 8-byte header length")
        }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw SafeTensorsError.truncated(
                path: path,
                reason: "header length \(headerLength) runs past the end of the \(data.count)-byte file")
        }
        dataStart = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart))
        } catch {
            throw SafeTensorsError.malformedHeader(path: path, reason: "not valid JSON")
        }
        guard let header = json as? [String: Any] else {
            throw SafeTensorsError.malformedHeader(path: path, reason: "the header is not a JSON object")
        }
        (tensors, metadata) = try Self.parse(header: header, path: path, dataSize: data.count - dataStart)
    }

    private static func parse(header: [String: Any], path: String, dataSize: Int) throws
        -> ([String: TensorInfo], [String: String])
    {
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let entries = value as? [String: Any] else {
                    throw SafeTensorsError.malformedHeader(
                        path: path, reason: "__metadata__ is not an object")
                }
                for (key, entry) in entries {
                    guard let text = entry as? String else {
                        throw SafeTensorsError.malformedHeader(
                            path: path, reason: "__metadata__.\(key) is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                let shapeValues = entry["shape"] as? [Any], let offsetValues = entry["data_offsets"] as? [Any]
            else {
                throw SafeTensorsError.malformedHeader(
                    path: path, reason: "tensor '\(name)' needs \"dtype\", \"shape\" and \"data_offsets\"")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw SafeTensorsError.unknownDType(path: path, tensor: name, dtype: dtypeName)
            }
            let shape = shapeValues.compactMap { ($0 as? NSNumber)?.intValue }
            let offsets = offsetValues.compactMap { ($0 as? NSNumber)?.intValue }
            guard shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError.malformedHeader(
                    path: path, reason: "tensor '\(name)' has a bad shape \(shapeValues)")
            }
            guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw SafeTensorsError.badOffsets(
                    path: path, tensor: name, reason: "data_offsets \(offsetValues) is not [begin, end]")
            }
            guard offsets[1] <= dataSize else {
                throw SafeTensorsError.badOffsets(
                    path: path, tensor: name,
                    reason: "data_offsets end \(offsets[1]) is past the \(dataSize) bytes of data")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            let (bytes, bytesOverflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !bytesOverflow, bytes == offsets[1] - offsets[0] else {
                let needed = overflow || bytesOverflow ? "more than 2^63" : "\(bytes)"
                throw SafeTensorsError.badOffsets(
                    path: path, tensor: name,
                    reason:
                        "shape \(shape) of \(dtype.rawValue) needs \(needed) bytes, data_offsets give \(offsets[1] - offsets[0])"
                )
            }
            tensors[name] = TensorInfo(dtype: dtype, shape: shape, dataRange: offsets[0]..<offsets[1])
        }
        return (tensors, metadata)
    }

    /// Converts tensor `name` to Float32 into `destination` (exactly its element count).
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard let info = tensors[name] else { throw SafeTensorsError.missingTensor(name: name, path: path) }
        guard info.dtype.isFloat else {
            throw SafeTensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype.rawValue)
        }
        precondition(
            destination.count == info.elementCount, "destination of \(destination.count) for \(info.shape)")
        let n = info.elementCount
        data.withUnsafeBytes { raw in
            let source = raw.baseAddress! + dataStart + info.dataRange.lowerBound
            let out = destination.baseAddress!
            switch info.dtype {
            case .f32:
                for i in 0..<n { out[i] = source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
            case .f64:
                for i in 0..<n {
                    out[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
                }
            case .bf16:
                for i in 0..<n {
                    out[i] = bfloat16ToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            case .f16:
                for i in 0..<n {
                    out[i] = float16ToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            default:
                preconditionFailure("checked above")
            }
        }
    }

    /// Tensor `name` converted to Float32.
    public func floats(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else { throw SafeTensorsError.missingTensor(name: name, path: path) }
        var result = [Float](repeating: 0, count: info.elementCount)
        try result.withUnsafeMutableBufferPointer { try read(name, into: $0) }
        return result
    }
}
