import Foundation

/// What can be wrong with a `.safetensors` file or a shard index; every case names the file.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case truncated(path: String, reason: String)
    case malformedHeader(path: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case badOffsets(path: String, tensor: String, reason: String)
    case missingTensor(name: String, path: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "\(path): cannot read: \(reason)"
        case .truncated(let path, let reason): "\(path): truncated safetensors file: \(reason)"
        case .malformedHeader(let path, let reason): "\(path): malformed safetensors header: \(reason)"
        case .unknownDType(let path, let tensor, let dtype):
            "\(path): tensor '\(tensor)' has unknown dtype '\(dtype)'"
        case .badOffsets(let path, let tensor, let reason): "\(path): tensor '\(tensor)': \(reason)"
        case .missingTensor(let name, let path): "\(path): no tensor named '\(name)'"
        case .unsupportedDType(let path, let tensor, let dtype):
            "\(path): tensor '\(tensor)' is \(dtype); only F32, F16, BF16 and F64 convert to float"
        case .writeFailed(let path, let reason): "\(path): write failed: \(reason)"
        }
    }
}

/// A filesystem error as a sentence ("no space left on device", "permission denied"), not the
/// NSError dump Foundation prints for it.
public func describeFileError(_ error: Error) -> String {
    if let problem = error as? SafeTensorsError { return "\(problem)" }
    let ns = error as NSError
    var reason: String?
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain
    {
        reason = String(cString: strerror(Int32(underlying.code)))
    } else if ns.domain == NSPOSIXErrorDomain {
        reason = String(cString: strerror(Int32(ns.code)))
    } else if ns.domain == NSCocoaErrorDomain {
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileWriteOutOfSpace: reason = "no space left on device"
        case .fileWriteNoPermission, .fileReadNoPermission: reason = "permission denied"
        case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file or directory"
        case .fileWriteFileExists: reason = "a file of that name already exists"
        case .fileWriteVolumeReadOnly: reason = "read-only file system"
        case .fileReadTooLarge: reason = "the file is too large"
        case .fileReadCorruptFile: reason = "the file is corrupt"
        default: reason = nil
        }
    }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    let text = reason ?? ns.localizedDescription
    return path.map { "\($0): \(text)" } ?? text
}
