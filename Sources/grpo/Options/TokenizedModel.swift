import ArgumentParser
import Foundation
import Models
import Tokenizers

extension ModelOptions {
    /// The model with its tokenizer and tokenizer config; a folder without tokenizer.json is an error.
    func loadWithTokenizer() throws -> (Transformer, Tokenizer, TokenizerConfig) {
        let transformer = try load()
        guard FileManager.default.fileExists(atPath: model + "/tokenizer.json") else {
            throw ValidationError("\(model) has no tokenizer.json")
        }
        return (transformer, try Tokenizer(path: model), try TokenizerConfig.load(folder: model))
    }
}
