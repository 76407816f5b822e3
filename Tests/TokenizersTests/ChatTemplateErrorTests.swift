import Testing
import Tokenizers

private func renderError(_ source: String, _ variables: [String: Value] = [:]) -> TemplateError? {
    do {
        _ = try ChatTemplate(source).render(variables)
        return nil
    } catch let error as TemplateError {
        return error
    } catch {
        return nil
    }
}

@Test(arguments: [
    ("hello\n{% if x %}never closed", 2, "'if' without a matching 'endif'"),
    ("a\nb {{ 1 + }}", 2, "unexpected end of tag"),
    ("{% for in items %}{% endfor %}", 1, "expected 'in', got 'items'"),
    ("line1\n\n  {{ x | nosuchfilter }}", 3, "unknown filter 'nosuchfilter'"),
    ("{{ 'unterminated }}", 1, "unclosed tag"),
    ("{% endif %}", 1, "unexpected 'endif'"),
    ("{{ x is nosuchtest }}", 1, "unknown test 'nosuchtest'"),
    ("{% frobnicate %}", 1, "unknown statement 'frobnicate'"),
    ("x {{ y", 1, "unclosed tag"),
])
func syntaxAndNameErrorsGiveLineAndColumn(source: String, line: Int, message: String) {
    let error = renderError(source)
    #expect(error?.line == line, "\(String(describing: error))")
    #expect(error?.column ?? 0 > 0)
    #expect(error?.message.contains(message) == true, "\(String(describing: error))")
}

@Test func raiseExceptionStopsRenderingWithItsMessage() {
    let error = renderError(
        "{% if messages | length == 0 %}{{ raise_exception('no messages') }}{% endif %}",
        ["messages": .array([])])
    #expect(error?.message == "raise_exception: no messages")
    #expect(error?.line == 1)
}

@Test func whitespaceControlAndBlockTrimming() throws {
    let source = "<ul>\n  {% for x in xs %}\n  <li>{{ x }}</li>\n  {% endfor %}\n</ul>\n{{- ' end' -}}  \n  !"
    let rendered = try ChatTemplate(source).render(["xs": .array([.int(1), .int(2)])])
    #expect(rendered == "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul> end!")
}

@Test func orderedJSONKeepsKeyOrderAndReportsPosition() throws {
    guard
        case .object(let object) = try parseOrderedJSON(
            #"{"z": 1, "a": {"y": [1, 2.5, "é\u00e9"], "b": null}}"#)
    else {
        Issue.record("not an object")
        return
    }
    #expect(object.keys == ["z", "a"])
    #expect(throws: JSONSyntaxError.self) { try parseOrderedJSON("{\n  \"a\": tru }") }
    do {
        _ = try parseOrderedJSON("{\n  \"a\": tru }")
    } catch let error as JSONSyntaxError {
        #expect(error.line == 2)
    }
}
