import Foundation

/// The weights of a model folder: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` lists in its `weight_map`.
public struct SafeTensorsCollection: Sendable {
    public let folder: String
    private let files: [String: SafeTensorsFile]
    private let location: [String: String]

    public init(folder: String) throws {
        self.folder = folder
        let single = folder + "/model.safetensors"
        let indexPath = folder + "/model.safetensors.index.json"
        let fm = FileManager.default
        if fm.fileExists(atPath: indexPath) {
            guard let data = fm.contents(atPath: indexPath),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else {
                throw SafeTensorsError.malformedHeader(path: indexPath, reason: "not a JSON object")
            }
            guard let weightMap = json["weight_map"] as? [String: String] else {
                throw SafeTensorsError.malformedHeader(
                    path: indexPath, reason: "needs a \"weight_map\" of name -> file")
            }
            var files: [String: SafeTensorsFile] = [:]
            for shard in Set(weightMap.values) {
                files[shard] = try SafeTensorsFile(path: folder + "/" + shard)
            }
            for (name, shard) in weightMap where files[shard]!.tensors[name] == nil {
                throw SafeTensorsError.missingTensor(name: name, path: folder + "/" + shard)
            }
            self.files = files
            location = weightMap
        } else if fm.fileExists(atPath: single) {
            let file = try SafeTensorsFile(path: single)
            files = ["model.safetensors": file]
            location = file.tensors.mapValues { _ in "model.safetensors" }
        } else {
            throw SafeTensorsError.unreadable(
                path: folder, reason: "no model.safetensors or model.safetensors.index.json in this folder")
        }
    }

    public var names: [String] { location.keys.sorted() }

    public func info(_ name: String) -> TensorInfo? { location[name].flatMap { files[$0]?.tensors[name] } }

    /// The file that holds `name`, or the error that names what is missing.
    public func file(for name: String) throws -> SafeTensorsFile {
        guard let shard = location[name], let file = files[shard] else {
            throw SafeTensorsError.missingTensor(name: name, path: folder + "/model.safetensors")
        }
        return file
    }

    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        try file(for: name).read(name, into: destination)
    }
}
