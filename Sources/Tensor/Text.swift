extension String {
    /// This text padded with spaces to `width` characters, with one space at least after it
    /// (the columns of the command line's tables).
    public func padded(to width: Int) -> String {
        count >= width ? self + " " : padding(toLength: width, withPad: " ", startingAt: 0)
    }
}
