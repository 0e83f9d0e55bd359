import ArgumentParser
import Experiments
import Models
import Training

/// `lth4sa info`: layer table and parameter count of a model.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's layer table and parameter count.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Classes of the classifier.") var classes: Int = 10
    @OptionGroup var samOptions: SAMOptions

    func run() throws {
        guard classes >= 2 else { throw ValidationError("--classes must be at least 2, got \(classes)") }
        let spec = try ModelSpec(modelOptions.model)
        let net = ResNet(spec, classes: classes, seed: 0)
        var config = RunConfig()
        samOptions.apply(to: &config)
        let sam = try SAMAttachment.attach(config, to: net)
        if let id = sam["sam.id"] {
            print("SAM \(id) \(sam["sam.version"] ?? "") (\(sam["sam.options"] ?? "")), \(config.attach), scheme \(sam["scheme"] ?? "")")
        }
        print("\(spec): \(spec.blockCount) residual blocks in stages \(spec.blocksPerStage.map(String.init).joined(separator: "-")), input \(spec.imageSize)x\(spec.imageSize)x3, \(classes) classes")
        print("name".padding(toLength: 14, withPad: " ", startingAt: 0) + "kind".padding(toLength: 26, withPad: " ", startingAt: 0) + "output".padding(toLength: 14, withPad: " ", startingAt: 0) + "params")
        for row in net.layerTable() {
            print(row.name.padding(toLength: 14, withPad: " ", startingAt: 0) + row.kind.padding(toLength: 26, withPad: " ", startingAt: 0)
                  + row.output.padding(toLength: 14, withPad: " ", startingAt: 0) + String(row.params))
        }
        for (s, stage) in net.stages.enumerated() {
            for (name, module) in stage.attachedModules {
                print("layer\(s + 1).\(name)".padding(toLength: 14, withPad: " ", startingAt: 0) + "shared by the stage".padding(toLength: 40, withPad: " ", startingAt: 0) + String(module.parameterCount))
            }
        }
        print("total parameters: \(net.parameterCount)")
    }
}
