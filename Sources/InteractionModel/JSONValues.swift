import Foundation

/// True when `n` came from a JSON `true` or `false` (JSONSerialization gives every JSON number
/// and boolean as an NSNumber; a boolean's type code is "c").
public func isJSONBool(_ n: NSNumber) -> Bool {
    String(cString: n.objCType) == "c"
}
