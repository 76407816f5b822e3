import Foundation
import Testing
import Tokenizers

/// One behaviour of jinja2 (templates/snippets.json, made by scripts/make_template_fixtures.py
/// with transformers' jinja2 environment): a template, its variables, and the text or the error.
struct SnippetCase: CustomTestStringConvertible, Sendable {
    let name: String
    let source: String
    let variables: [String: Value]
    let expected: String?
    let errorType: String?
    var testDescription: String { name }
}

func snippetCases() throws -> [SnippetCase] {
    let text = try String(contentsOfFile: tokenizerFixture("templates/snippets.json"), encoding: .utf8)
    guard case .array(let cases) = try parseOrderedJSON(text) else { return [] }
    return cases.map { item in
        guard case .object(let c) = item, case .string(let name)? = c["name"],
            case .string(let source)? = c["source"],
            case .object(let variables)? = c["variables"]
        else { fatalError("malformed snippets.json") }
        var values: [String: Value] = [:]
        for (key, value) in variables.pairs { values[key] = value }
        let expected: String? = if case .string(let s)? = c["expected"] { s } else { nil }
        let errorType: String? = if case .string(let s)? = c["error"] { s } else { nil }
        return SnippetCase(
            name: name, source: source, variables: values, expected: expected, errorType: errorType)
    }
}

@Test(arguments: try snippetCases())
func snippetsBehaveAsJinja2(_ snippet: SnippetCase) throws {
    let template = try ChatTemplate(snippet.source)
    if let expected = snippet.expected {
        let rendered = try template.render(snippet.variables)
        #expect(
            rendered.unicodeScalars.elementsEqual(expected.unicodeScalars), "\(rendered.debugDescription)")
    } else {
        // jinja2 raised (TypeError, OverflowError): here, a TemplateError with a message.
        #expect(throws: TemplateError.self, "jinja2 raised \(snippet.errorType ?? "")") {
            try template.render(snippet.variables)
        }
    }
}

/// apply.json: conversations rendered by transformers' whole apply_chat_template, which drops null
/// keys, aliases reasoning fields and passes template kwargs over the special tokens.
@Test func renderChatMatchesApplyChatTemplate() throws {
    let text = try String(contentsOfFile: tokenizerFixture("templates/apply.json"), encoding: .utf8)
    guard case .object(let root) = try parseOrderedJSON(text), case .string(let template)? = root["template"],
        case .array(let cases)? = root["cases"]
    else { throw TokenizerError.unreadable(path: "apply.json", reason: "layout") }
    var config = TokenizerConfig(chatTemplates: ["default": template], generationEOSTokenIDs: [])
    config.bosToken = root["bos_token"]?.text
    config.eosToken = root["eos_token"]?.text
    #expect(cases.count == 12)
    for item in cases {
        guard case .object(let c) = item, case .object(let kwargs)? = c["kwargs"],
            case .bool(let addGenerationPrompt)? = c["add_generation_prompt"], let messages = c["messages"]
        else { throw TokenizerError.unreadable(path: "apply.json", reason: "case layout") }
        var extra: [String: Value] = [:]
        for (key, value) in kwargs.pairs { extra[key] = value }
        let rendered = try config.renderChat(
            messages: messages, addGenerationPrompt: addGenerationPrompt, extra: extra)
        #expect(rendered == c["expected"]?.text, "\(c["name"]?.text ?? "")")
    }
}

private func renderingError(_ source: String, _ variables: [String: Value] = [:]) -> String {
    do {
        _ = try ChatTemplate(source).render(variables)
        return "rendered"
    } catch {
        return "\(error)"
    }
}

/// Hostile templates end in an error naming the limit, never a crash, a hang or gigabytes.
@Test(arguments: [
    ("{% for i in range(10**12) %}x{% endfor %}", "range too big"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop iterations"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested more than 200 deep"),
    (
        String(repeating: "{% if true %}", count: 5000) + String(repeating: "{% endif %}", count: 5000),
        "blocks nested more than 100 deep"
    ),
    (
        "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}",
        "expression nested more than 100 deep"
    ),
    ("{{ " + String(repeating: "not ", count: 5000) + "x }}", "expression nested more than 100 deep"),
    ("{{ 'x' * 10**9 }}", "would pass 16 MiB"),
    (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "past 16 MiB"
    ),
    ("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "output grew past 16 MiB"),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "list grew past"
    ),
    ("{{ 10 ** 30 }}", "does not fit in 64 bits"),
    ("{{ 9223372036854775807 + 1 }}", "does not fit in 64 bits"),
    ("{{ 99999999999999999999 }}", "integer literal 99999999999999999999 is too large"),
    ("{{ (1e308 * 10) | int }}", "cannot convert float inf to integer"),
    ("{{ 'abc' | indent(10**9) }}", "indent width"),
    ("{{ [1, 2, 3][::9223372036854775807] }}", "rendered"),
    (
        "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|tojson }}",
        "a value nested more than 100 deep"
    ),
    ("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}", "(or holding itself)"),
    ("{{ -(-9223372036854775807 - 1) }}", "does not fit in 64 bits"),
    ("{{ (-9223372036854775807 - 1)|abs }}", "does not fit in 64 bits"),
])
func hostileTemplatesAreBounded(source: String, message: String) {
    let error = renderingError(source)
    #expect(error.contains(message), "\(error.prefix(300))")
}

/// The recursion limit holds on a thread with a small stack (a worker thread's 512 KiB).
@Test func deepRecursionFitsASmallStack() async {
    let source =
        "{% macro f(n) %}{% if n > 0 %}{% for x in [1] %}{{ f(n - 1) }}{% endfor %}{% endif %}{% endmacro %}{{ f(10000) }}"
    let result = await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
        let thread = Thread { continuation.resume(returning: renderingError(source)) }
        thread.stackSize = 512 << 10
        thread.start()
    }
    #expect(result.contains("nested more than 200 deep"), "\(result)")
}
