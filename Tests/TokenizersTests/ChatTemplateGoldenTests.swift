import Foundation
import Testing
import Tokenizers

/// Renderings made by scripts/make_template_fixtures.py with transformers' own jinja2 environment.
struct TemplateCase: CustomTestStringConvertible {
    let template: String
    let conversation: String
    let variables: [String: Value]
    let expected: String
    var testDescription: String {
        "\(template)/\(conversation)/\(variables["add_generation_prompt"]!.isTrueLiteral)"
    }
}

extension Value {
    var isTrueLiteral: Bool { if case .bool(true) = self { true } else { false } }
}

func templateCases() throws -> [TemplateCase] {
    let text = try String(contentsOfFile: tokenizerFixture("templates/expected.json"), encoding: .utf8)
    guard case .array(let cases) = try parseOrderedJSON(text) else { return [] }
    return cases.map { item in
        guard case .object(let c) = item, case .string(let template) = c["template"]!,
            case .string(let conversation) = c["conversation"]!, case .string(let expected) = c["expected"]!,
            case .object(let kwargs) = c["kwargs"]!
        else { fatalError("malformed fixture") }
        var variables: [String: Value] = [
            "messages": c["messages"]!, "tools": c["tools"]!, "documents": .none,
            "add_generation_prompt": c["add_generation_prompt"]!,
        ]
        for key in kwargs.keys { variables[key] = kwargs[key]! }
        return TemplateCase(
            template: template, conversation: conversation, variables: variables, expected: expected)
    }
}

@Test(arguments: try templateCases())
func renderingMatchesJinja2(_ testCase: TemplateCase) throws {
    let source = try String(
        contentsOfFile: tokenizerFixture("templates/\(testCase.template).jinja"), encoding: .utf8)
    let rendered = try ChatTemplate(source).render(testCase.variables)
    if rendered != testCase.expected {
        let got = Array(rendered)
        let want = Array(testCase.expected)
        let at = zip(got, want).enumerated().first { $1.0 != $1.1 }?.offset ?? min(got.count, want.count)
        let context = { (c: [Character]) in
            String(c[max(0, at - 30)..<min(c.count, at + 30)]).debugDescription
        }
        Issue.record("first difference at character \(at): got \(context(got)), expected \(context(want))")
    }
}
