import ArgumentParser
import Foundation
import SafeTensors
import Training

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw a run's curves from its metrics.jsonl into one SVG.",
        discussion: """
            Charts every metric the run logged: training and held-out reward, each reward's mean, \
            held-out accuracy and pass@k, KL, completion lengths, clipped ratios, loss and learning \
            rate. Works on a run in progress.

            Example: grpo plot grpo-output (writes grpo-output/plot.svg)
            """)

    @Argument(help: "A run's output_dir, or its metrics.jsonl.") var folder: String
    @Option(help: "Where to write the SVG (default: RUN/plot.svg).") var output: String?

    func run() throws {
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: self.folder, isDirectory: &isFolder)
        let metrics = exists && isFolder.boolValue ? self.folder + "/metrics.jsonl" : self.folder
        guard FileManager.default.fileExists(atPath: metrics) else {
            throw ValidationError(
                "\(metrics): no such file (a run's output_dir holds metrics.jsonl once a step is logged)")
        }
        let curves = try readMetricsCurves(metrics)
        let parent = (metrics as NSString).deletingLastPathComponent
        let destination = output ?? (parent.isEmpty ? "." : parent) + "/plot.svg"
        let title =
            "grpo: "
            + ((parent as NSString).lastPathComponent.isEmpty
                ? metrics : (parent as NSString).lastPathComponent)
        try atomicWrite(Data(runPlot(curves: curves, title: title).utf8), to: destination)
        print("wrote \(destination) (\(curves.count) metrics)")
    }
}
