import Foundation

/// An SVG chart of a demo run: the accuracy of the sampled training completions per GRPO step (raw
/// and smoothed), and where it was measured the held-out accuracy (sampled and greedy) and the share
/// of sampled answers that work the problem out, all on a 0-100% axis.
func demoPlot(
    curve: [(step: Int, reward: Double, accuracy: Double)], evaluations: [DemoEvaluation], steps: Int
) -> String {
    let (width, height) = (760.0, 420.0)
    let (left, right, top, bottom) = (64.0, 24.0, 56.0, 56.0)
    let plotWidth = width - left - right
    let plotHeight = height - top - bottom
    func x(_ step: Double) -> Double { left + plotWidth * step / Double(max(steps, 1)) }
    func y(_ fraction: Double) -> Double { top + plotHeight * (1 - min(max(fraction, 0), 1)) }
    func point(_ step: Double, _ fraction: Double) -> String {
        String(format: "%.1f,%.1f", x(step), y(fraction))
    }
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="13">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="24" font-size="16" font-weight="bold">grpo demo: accuracy over GRPO steps</text>

        """
    for tick in stride(from: 0.0, through: 1.0, by: 0.25) {
        svg += "<line x1=\"\(left)\" x2=\"\(left + plotWidth)\" y1=\"\(y(tick))\" y2=\"\(y(tick))\" "
        svg += "stroke=\"#e5e5e5\"/>\n"
        svg += "<text x=\"\(left - 8)\" y=\"\(y(tick) + 4)\" text-anchor=\"end\">\(Int(tick * 100))%</text>\n"
    }
    let stepTick =
        [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000].first {
            $0 * 6 >= steps
        } ?? max(1, steps / 6)
    for step in stride(from: 0, through: steps, by: stepTick) {
        svg +=
            "<text x=\"\(x(Double(step)))\" y=\"\(top + plotHeight + 20)\" text-anchor=\"middle\">\(step)</text>\n"
    }
    svg +=
        "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 12)\" text-anchor=\"middle\">GRPO step</text>\n"
    svg += "<line x1=\"\(left)\" x2=\"\(left)\" y1=\"\(top)\" y2=\"\(top + plotHeight)\" stroke=\"#444\"/>\n"
    svg += "<line x1=\"\(left)\" x2=\"\(left + plotWidth)\" y1=\"\(top + plotHeight)\" "
    svg += "y2=\"\(top + plotHeight)\" stroke=\"#444\"/>\n"

    let raw = curve.filter { $0.accuracy.isFinite }
    if !raw.isEmpty {
        let faint = raw.map { point(Double($0.step), $0.accuracy) }.joined(separator: " ")
        svg += "<polyline points=\"\(faint)\" fill=\"none\" stroke=\"#f4a259\" stroke-opacity=\"0.35\"/>\n"
        let window = max(1, raw.count / 15)
        let smooth = raw.indices.map { i -> String in
            let slice = raw[max(0, i - window + 1)...i]
            return point(Double(raw[i].step), slice.map(\.accuracy).reduce(0, +) / Double(slice.count))
        }
        svg += "<polyline points=\"\(smooth.joined(separator: " "))\" fill=\"none\" stroke=\"#e07b00\" "
        svg += "stroke-width=\"2.5\"/>\n"
    }
    let measured = evaluations.filter { $0.stage != "base" }
    let greedy = measured.map { point(Double($0.step), $0.accuracy) }.joined(separator: " ")
    svg += "<polyline points=\"\(greedy)\" fill=\"none\" stroke=\"#6a9fd8\" stroke-width=\"2\" "
    svg += "stroke-dasharray=\"6 4\"/>\n"
    let worked = measured.map { point(Double($0.step), $0.worked) }.joined(separator: " ")
    svg += "<polyline points=\"\(worked)\" fill=\"none\" stroke=\"#3a9d5d\" stroke-width=\"2\" "
    svg += "stroke-dasharray=\"2 3\"/>\n"
    let sampled = measured.map { point(Double($0.step), $0.sampledAccuracy) }.joined(separator: " ")
    svg += "<polyline points=\"\(sampled)\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2.5\"/>\n"
    for evaluation in measured {
        svg +=
            "<circle cx=\"\(x(Double(evaluation.step)))\" cy=\"\(y(evaluation.sampledAccuracy))\" r=\"4.5\" "
        svg += "fill=\"#1f5fa8\"/>\n"
    }
    if let first = measured.first, let last = measured.last {
        for (evaluation, anchor) in [(first, "start"), (last, "end")] {
            let label = String(format: "%.0f%%", evaluation.sampledAccuracy * 100)
            let dx = anchor == "start" ? 8.0 : -8.0
            svg +=
                "<text x=\"\(x(Double(evaluation.step)) + dx)\" y=\"\(y(evaluation.sampledAccuracy) + 20)\" "
            svg += "text-anchor=\"\(anchor)\" fill=\"#1f5fa8\" font-weight=\"bold\">\(label)</text>\n"
        }
    }
    let legend = [
        ("#1f5fa8", "", "held-out, sampled"), ("#6a9fd8", " stroke-dasharray=\"6 4\"", "held-out, greedy"),
        ("#e07b00", "", "training samples"), ("#3a9d5d", " stroke-dasharray=\"2 3\"", "worked answers"),
    ]
    for (i, (color, dash, label)) in legend.enumerated() {
        let x0 = left + Double(i) * 165
        svg +=
            "<line x1=\"\(x0)\" x2=\"\(x0 + 24)\" y1=\"\(top - 12)\" y2=\"\(top - 12)\" stroke=\"\(color)\" "
        svg += "stroke-width=\"2.5\"\(dash)/>\n"
        svg += "<text x=\"\(x0 + 30)\" y=\"\(top - 8)\">\(label)</text>\n"
    }
    svg += "</svg>\n"
    return svg
}
