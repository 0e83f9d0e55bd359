import ArgumentParser
struct Train: ParsableCommand { func run() throws {} }
struct Eval: ParsableCommand { func run() throws {} }
