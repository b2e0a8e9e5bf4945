/// Time formatting and parsing for FHIR instants, search dates and HTTP dates.
///
/// Times are Unix epoch milliseconds (`Int64`), UTC. Pure integer arithmetic (no Foundation
/// formatters), so it is fast and deterministic.
package enum FHIRTime {
    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(days z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// FHIR `instant`: `2026-11-22T10:15:30.123Z`.
    package static func instant(millis: Int64) -> String {
        let seconds = Int(millis >= 0 ? millis / 1000 : (millis - 999) / 1000)
        let ms = Int(millis - Int64(seconds) * 1000)
        let dayCount = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secOfDay = seconds - dayCount * 86400
        let (y, m, d) = civil(days: dayCount)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secOfDay / 3600, 2)):\(pad(secOfDay / 60 % 60, 2)):"
            + "\(pad(secOfDay % 60, 2)).\(pad(ms, 3))Z"
    }

    static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// HTTP-date (RFC 9110 IMF-fixdate): `Sun, 22 Nov 2026 10:15:30 GMT`.
    package static func httpDate(millis: Int64) -> String {
        let seconds = Int(millis / 1000)
        let dayCount = seconds / 86400
        let secOfDay = seconds % 86400
        let (y, m, d) = civil(days: dayCount)
        let weekday = weekdays[((dayCount % 7) + 7) % 7]
        return "\(weekday), \(pad(d, 2)) \(months[m - 1]) \(pad(y, 4)) \(pad(secOfDay / 3600, 2)):"
            + "\(pad(secOfDay / 60 % 60, 2)):\(pad(secOfDay % 60, 2)) GMT"
    }

    /// A half-open time range `[start, end)` in epoch milliseconds.
    package struct Range: Sendable, Equatable {
        package var start: Int64
        package var end: Int64
    }

    /// Parses a FHIR `date`, `dateTime` or `instant` into the range it denotes at its precision
    /// (`2026` is the whole year). Returns nil for anything malformed.
    package static func parseRange(_ text: String) -> Range? {
        // Read in place (a search parses a date of every candidate it decides).
        if let range = text.utf8.withContiguousStorageIfAvailable({ parseRange(bytes: $0) }) { return range }
        return Array(text.utf8).withUnsafeBufferPointer { parseRange(bytes: $0) }
    }

    private static func parseRange(bytes b: UnsafeBufferPointer<UInt8>) -> Range? {
        var i = 0
        func number(_ count: Int) -> Int? {
            guard i + count <= b.count else { return nil }
            var value = 0
            for k in 0..<count {
                let c = b[i + k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                value = value * 10 + Int(c - 0x30)
            }
            i += count
            return value
        }
        func expect(_ c: Unicode.Scalar) -> Bool {
            guard i < b.count, b[i] == UInt8(ascii: c) else { return false }
            i += 1
            return true
        }
        guard let year = number(4) else { return nil }
        if i == b.count {
            let s = Int64(days(year: year, month: 1, day: 1)) * 86_400_000
            return Range(start: s, end: Int64(days(year: year + 1, month: 1, day: 1)) * 86_400_000)
        }
        guard expect("-"), let month = number(2), (1...12).contains(month) else { return nil }
        if i == b.count {
            let s = Int64(days(year: year, month: month, day: 1)) * 86_400_000
            let (ny, nm) = month == 12 ? (year + 1, 1) : (year, month + 1)
            return Range(start: s, end: Int64(days(year: ny, month: nm, day: 1)) * 86_400_000)
        }
        guard expect("-"), let day = number(2), (1...31).contains(day) else { return nil }
        let dayStart = Int64(days(year: year, month: month, day: day)) * 86_400_000
        if i == b.count { return Range(start: dayStart, end: dayStart + 86_400_000) }
        guard expect("T"), let hour = number(2), hour < 24, expect(":"), let minute = number(2), minute < 60
        else { return nil }
        var second = 0
        var millis = 0
        var precision: Int64 = 60_000
        if expect(":") {
            guard let s = number(2), s < 60 else { return nil }
            second = s
            precision = 1000
            if expect(".") {
                var digits = 0
                var fraction = 0
                while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                    if digits < 3 { fraction = fraction * 10 + Int(b[i] - 0x30) }
                    digits += 1
                    i += 1
                }
                guard digits > 0 else { return nil }
                for _ in digits..<3 where digits < 3 { fraction *= 10 }
                millis = fraction
                precision = 1
            }
        }
        var offsetMinutes = 0
        if expect("Z") {
        } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = number(2), expect(":"), let om = number(2) else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
        }
        guard i == b.count else { return nil }
        let start =
            dayStart + Int64(hour * 3_600_000 + minute * 60_000 + second * 1000 + millis)
            - Int64(offsetMinutes) * 60_000
        return Range(start: start, end: start + precision)
    }
}
