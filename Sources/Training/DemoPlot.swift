import Foundation

/// An SVG chart of a demo run (drawn by the same code as `grpo plot`): the accuracy of the sampled training completions per GRPO step (raw
/// and smoothed), and where it was measured the held-out accuracy (sampled and greedy) and the share
/// of sampled answers that work the problem out, all on a 0-100% axis.
func demoPlot(
    curve: [(step: Int, reward: Double, accuracy: Double)], evaluations: [DemoEvaluation], steps: Int
) -> String {
    let raw = curve.filter { $0.accuracy.isFinite }
    let window = max(1, raw.count / 15)
    let smooth = raw.indices.map { i -> (x: Double, y: Double) in
        let slice = raw[max(0, i - window + 1)...i]
        return (Double(raw[i].step), slice.map(\.accuracy).reduce(0, +) / Double(slice.count))
    }
    var faint = PlotSeries(
        "training samples, raw", color: "#f4a259", points: raw.map { (Double($0.step), $0.accuracy) })
    faint.opacity = 0.35
    faint.width = 1
    faint.inLegend = false
    var training = PlotSeries("training samples", color: "#e07b00", points: smooth)
    training.width = 2.5
    let measured = evaluations.filter { $0.stage != "base" }
    var greedy = PlotSeries(
        "held-out, greedy", color: "#6a9fd8", points: measured.map { (Double($0.step), $0.accuracy) })
    greedy.dash = "6 4"
    var worked = PlotSeries(
        "worked answers", color: "#3a9d5d", points: measured.map { (Double($0.step), $0.worked) })
    worked.dash = "2 3"
    var sampled = PlotSeries(
        "held-out, sampled", color: "#1f5fa8", points: measured.map { (Double($0.step), $0.sampledAccuracy) })
    sampled.width = 2.5
    sampled.markers = true
    var panel = PlotPanel("accuracy", series: [faint, training, greedy, worked, sampled])
    panel.yRange = 0...1
    panel.percent = true
    panel.xLabel = "GRPO step (of \(steps))"
    panel.labelEnds = true
    return renderPlot(
        title: "grpo demo: accuracy over GRPO steps", panels: [panel], columns: 1, size: (760, 420))
}
