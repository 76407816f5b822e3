import Testing

@testable import Rewards

struct JudgeTemplateTests {
    @Test func placeholdersAndBraces() throws {
        let template = "Q: {prompt}\nA: {completion}\nReference: {answer} {{json}} {completion}"
        #expect(try templatePlaceholders(template) == ["prompt", "completion", "answer"])
        let filled = try fillTemplate(template, ["prompt": "1+1", "completion": "2", "answer": "2"])
        #expect(filled == "Q: 1+1\nA: 2\nReference: 2 {json} 2")
        for bad in ["{prompt", "a } b", "{not a name}", "{}"] {
            #expect(throws: TemplateProblem.self) { try templatePlaceholders(bad) }
        }
    }
}
