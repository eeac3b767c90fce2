internal import CDcmtk

public enum DCMTK {
    /// The DCMTK version linked in.
    public static var version: String { String(cString: dcmshim_version()) }
}
