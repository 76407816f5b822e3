import Foundation

/// One line of a chart panel.
public struct PlotSeries {
    public var label: String
    public var color: String
    public var points: [(x: Double, y: Double)]
    public var width = 2.0
    public var dash: String?
    public var opacity = 1.0
    /// Circles at the points (sparse measurements: held-out evaluations).
    public var markers = false
    public var inLegend = true

    public init(_ label: String, color: String, points: [(x: Double, y: Double)]) {
        self.label = label
        self.color = color
        self.points = points.filter { $0.x.isFinite && $0.y.isFinite }
    }
}

/// One chart: a title, its lines, and its y axis (fitted to the data unless given).
public struct PlotPanel {
    public var title: String
    public var series: [PlotSeries]
    public var yRange: ClosedRange<Double>?
    /// Ticks as percentages of 1.
    public var percent = false
    public var xLabel = "step"
    /// Write the first and last value of the first series with markers beside them.
    public var labelEnds = false

    public init(_ title: String, series: [PlotSeries]) {
        self.title = title
        self.series = series.filter { !$0.points.isEmpty }
    }
}

/// An SVG of `panels` in a grid of `columns`, each `size` points, under `title`.
public func renderPlot(
    title: String, panels: [PlotPanel], columns: Int, size: (width: Double, height: Double)
) -> String {
    let rows = (panels.count + columns - 1) / max(columns, 1)
    let header = 36.0
    let width = size.width * Double(min(columns, max(panels.count, 1)))
    let height = header + size.height * Double(max(rows, 1))
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="16" y="24" font-size="16" font-weight="bold">\(escapeXML(title))</text>

        """
    for (index, panel) in panels.enumerated() {
        let originX = size.width * Double(index % columns)
        let originY = header + size.height * Double(index / columns)
        svg += renderPanel(panel, x: originX, y: originY, size: size)
    }
    svg += "</svg>\n"
    return svg
}

private func renderPanel(
    _ panel: PlotPanel, x originX: Double, y originY: Double, size: (width: Double, height: Double)
)
    -> String
{
    let (left, right, top, bottom) = (62.0, 16.0, 46.0, 40.0)
    let plotWidth = size.width - left - right
    let plotHeight = size.height - top - bottom
    let all = panel.series.flatMap(\.points)
    let xs = all.map(\.x)
    let (xMin, xMax) = (min(xs.min() ?? 0, 0), max(xs.max() ?? 1, 1))
    let yRange = panel.yRange ?? fittedRange(all.map(\.y))
    func px(_ value: Double) -> Double {
        originX + left + plotWidth * (value - xMin) / max(xMax - xMin, 1e-12)
    }
    func py(_ value: Double) -> Double {
        let clamped = min(max(value, yRange.lowerBound), yRange.upperBound)
        return originY + top + plotHeight
            * (1 - (clamped - yRange.lowerBound) / max(yRange.upperBound - yRange.lowerBound, 1e-300))
    }
    func number(_ v: Double) -> String { String(format: "%.1f", v) }
    var svg = "<text x=\"\(number(originX + left))\" y=\"\(number(originY + 18))\" font-size=\"14\" "
    svg += "font-weight=\"bold\">\(escapeXML(panel.title))</text>\n"
    for tick in niceTicks(yRange) {
        let y = number(py(tick))
        svg +=
            "<line x1=\"\(number(originX + left))\" x2=\"\(number(originX + left + plotWidth))\" y1=\"\(y)\" "
        svg += "y2=\"\(y)\" stroke=\"#e5e5e5\"/>\n"
        let label = panel.percent ? "\(Int((tick * 100).rounded()))%" : tickLabel(tick)
        svg +=
            "<text x=\"\(number(originX + left - 6))\" y=\"\(number(py(tick) + 4))\" text-anchor=\"end\">\(label)</text>\n"
    }
    for tick in niceTicks(xMin...xMax, count: 6) where tick == tick.rounded() {
        svg += "<text x=\"\(number(px(tick)))\" y=\"\(number(originY + top + plotHeight + 16))\" "
        svg += "text-anchor=\"middle\">\(Int(tick))</text>\n"
    }
    svg += "<text x=\"\(number(originX + left + plotWidth / 2))\" y=\"\(number(originY + size.height - 8))\" "
    svg += "text-anchor=\"middle\" fill=\"#555\">\(escapeXML(panel.xLabel))</text>\n"
    svg += "<polyline points=\"\(number(originX + left)),\(number(originY + top)) \(number(originX + left)),"
    svg += "\(number(originY + top + plotHeight)) \(number(originX + left + plotWidth)),"
    svg += "\(number(originY + top + plotHeight))\" fill=\"none\" stroke=\"#444\"/>\n"
    for series in panel.series {
        let points = series.points.map { "\(number(px($0.x))),\(number(py($0.y)))" }.joined(separator: " ")
        svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(series.color)\" "
        svg += "stroke-width=\"\(series.width)\""
        if let dash = series.dash { svg += " stroke-dasharray=\"\(dash)\"" }
        if series.opacity < 1 { svg += " stroke-opacity=\"\(series.opacity)\"" }
        svg += "/>\n"
        if series.markers {
            for point in series.points {
                svg += "<circle cx=\"\(number(px(point.x)))\" cy=\"\(number(py(point.y)))\" r=\"3.5\" "
                svg += "fill=\"\(series.color)\"/>\n"
            }
        }
    }
    if panel.labelEnds, let series = panel.series.first(where: \.markers), let first = series.points.first,
        let last = series.points.last
    {
        for (point, anchor) in [(first, "start"), (last, "end")] {
            let label = panel.percent ? String(format: "%.0f%%", point.y * 100) : tickLabel(point.y)
            svg +=
                "<text x=\"\(number(px(point.x) + (anchor == "start" ? 8 : -8)))\" y=\"\(number(py(point.y) + 18))\" "
            svg += "text-anchor=\"\(anchor)\" fill=\"\(series.color)\" font-weight=\"bold\">\(label)</text>\n"
        }
    }
    var legendX = originX + left
    for series in panel.series where series.inLegend {
        let y = originY + 34
        svg += "<line x1=\"\(number(legendX))\" x2=\"\(number(legendX + 18))\" y1=\"\(number(y - 4))\" "
        svg += "y2=\"\(number(y - 4))\" stroke=\"\(series.color)\" stroke-width=\"2.5\""
        if let dash = series.dash { svg += " stroke-dasharray=\"\(dash)\"" }
        svg +=
            "/>\n<text x=\"\(number(legendX + 22))\" y=\"\(number(y))\">\(escapeXML(series.label))</text>\n"
        legendX += 34 + Double(series.label.count) * 6.2
    }
    return svg
}

/// The data's range with a little room, never empty.
func fittedRange(_ values: [Double]) -> ClosedRange<Double> {
    let finite = values.filter(\.isFinite)
    guard var low = finite.min(), var high = finite.max() else { return 0...1 }
    if high - low < 1e-12 * max(abs(high), 1) {
        let pad = max(abs(high) * 0.1, 1e-9)
        return (low - pad)...(high + pad)
    }
    let pad = (high - low) * 0.06
    low -= pad
    high += pad
    return low...high
}

/// About `count` round tick values (1, 2 or 5 times a power of ten apart) inside `range`.
func niceTicks(_ range: ClosedRange<Double>, count: Int = 5) -> [Double] {
    let span = range.upperBound - range.lowerBound
    guard span > 0, span.isFinite else { return [range.lowerBound] }
    let raw = span / Double(max(count - 1, 1))
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    var ticks: [Double] = []
    var tick = (range.lowerBound / step).rounded(.up) * step
    while tick <= range.upperBound + step * 1e-9 {
        ticks.append(abs(tick) < step * 1e-9 ? 0 : tick)
        tick += step
    }
    return ticks
}

private func tickLabel(_ value: Double) -> String {
    if value == 0 { return "0" }
    if abs(value) >= 1e4 || abs(value) < 1e-3 { return String(format: "%.0e", value) }
    if value == value.rounded() { return String(Int(value)) }
    return String(format: "%g", (value * 1e4).rounded() / 1e4)
}

private func escapeXML(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;")
}

// MARK: - A run's curves

/// Every metric of a `metrics.jsonl` as (step, value) points, by name.
public func readMetricsCurves(_ path: String) throws -> [String: [(x: Double, y: Double)]] {
    var curves: [String: [(x: Double, y: Double)]] = [:]
    for (line, object) in try readJSONLObjects(path) {
        guard case .int(let step)? = object["step"] else {
            throw DatasetError(path: path, line: line, reason: "expected a whole \"step\" on every line")
        }
        for (key, value) in object.pairs where key != "step" {
            let number: Double
            switch value {
            case .int(let n): number = Double(n)
            case .double(let d): number = d
            default: continue
            }
            curves[key, default: []].append((Double(step), number))
        }
    }
    return curves
}

/// The SVG `grpo plot` draws from a run's metrics: reward and per-reward means, held-out accuracy,
/// KL, completion lengths, clip ratios, loss and learning rate, each chart drawn when the run
/// logged it.
public func runPlot(curves: [String: [(x: Double, y: Double)]], title: String) -> String {
    let palette = ["#1f5fa8", "#e07b00", "#3a9d5d", "#c0392b", "#8e44ad", "#7f8c8d", "#d4ac0d"]
    func series(_ keys: [String], labels: [String]? = nil) -> [PlotSeries] {
        keys.enumerated().compactMap { i, key in
            guard let points = curves[key] else { return nil }
            var line = PlotSeries(labels?[i] ?? key, color: palette[i % palette.count], points: points)
            line.markers = points.count <= 30 && key.hasPrefix("eval/")
            return line
        }
    }
    let rewardMeans = curves.keys.filter { $0.hasPrefix("rewards/") && $0.hasSuffix("/mean") }.sorted()
    let passAtK = curves.keys.filter { $0.hasPrefix("eval/pass@") }.sorted()
    let evalRewards = curves.keys.filter { $0.hasPrefix("eval/rewards/") && $0.hasSuffix("/mean") }.sorted()
    var heldOut = PlotPanel(
        "held-out accuracy",
        series: series(
            ["eval/accuracy"] + passAtK, labels: ["accuracy"] + passAtK.map { String($0.dropFirst(5)) }))
    heldOut.yRange = 0...1
    heldOut.percent = true
    var panels = [
        PlotPanel("reward", series: series(["reward", "eval/reward"], labels: ["training", "held-out"])),
        PlotPanel(
            "reward means",
            series: series(
                rewardMeans + evalRewards,
                labels: (rewardMeans + evalRewards).map {
                    let name = $0.split(separator: "/").dropLast().last.map(String.init) ?? $0
                    return $0.hasPrefix("eval/") ? name + " (held-out)" : name
                })),
        heldOut,
        PlotPanel("KL to the reference", series: series(["kl"])),
        PlotPanel(
            "completion length (tokens)",
            series: series(
                [
                    "completions/mean_length", "completions/min_length", "completions/max_length",
                    "eval/completions/mean_length",
                ],
                labels: ["mean", "min", "max", "held-out mean"])),
        PlotPanel(
            "clipped ratios",
            series: series(
                ["clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"],
                labels: ["low", "high", "region"])),
        PlotPanel("loss", series: series(["loss"])),
        PlotPanel("learning rate", series: series(["learning_rate"])),
    ]
    panels = panels.filter { !$0.series.isEmpty }
    if panels.isEmpty { panels = [PlotPanel("no metrics logged yet", series: [])] }
    return renderPlot(title: title, panels: panels, columns: 2, size: (460, 270))
}
