import ArgumentParser
import Foundation
import Models
import Tokenizers

extension ModelOptions {
    /// The model with its tokenizer and tokenizer config; a folder without tokenizer.json is an error.
    func loadWithTokenizer() throws -> (Transformer, Tokenizer, TokenizerConfig) {
        let (transformer, folder) = (try load(), try folder())
        guard FileManager.default.fileExists(atPath: folder + "/tokenizer.json") else {
            throw ValidationError("\(folder) has no tokenizer.json")
        }
        return (transformer, try Tokenizer(path: folder), try TokenizerConfig.load(folder: folder))
    }
}
