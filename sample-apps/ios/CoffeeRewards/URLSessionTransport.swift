import Covey
import Foundation

/// Covey's foreign `Transport` over `URLSession`: the app's HTTP stack (ATS, proxies, pinning
/// through a session delegate). Covey calls it from a background thread and waits for the
/// answer, so it blocks on a semaphore; it is never called on the main thread.
final class URLSessionTransport: Transport, @unchecked Sendable {
    private let base: String
    private let session: URLSession
    private let maxResponseBytes: Int

    init(baseURL: String, session: URLSession = .shared, maxResponseBytes: Int = 256 << 20) {
        self.base = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.session = session
        self.maxResponseBytes = maxResponseBytes
    }

    func send(request: TransportRequest) throws -> TransportResponse {
        guard let url = URL(string: base + request.path) else {
            throw TransportError.Unreachable(reason: "bad server URL or path")
        }
        var http = URLRequest(url: url, timeoutInterval: 60)
        http.httpMethod = request.method == .get ? "GET" : "POST"
        if let bearer = request.bearer { http.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        if let type = request.contentType { http.setValue(type, forHTTPHeaderField: "Content-Type") }
        if request.method == .post { http.httpBody = request.body }

        var result: Result<TransportResponse, TransportError> = .failure(.Timeout)
        let done = DispatchSemaphore(value: 0)
        session.dataTask(with: http) { data, response, error in
            defer { done.signal() }
            if let error = error as? URLError {
                result = .failure(error.code == .timedOut ? .Timeout : .Unreachable(reason: "URLError \(error.code.rawValue)"))
                return
            }
            guard let response = response as? HTTPURLResponse else {
                result = .failure(.Unreachable(reason: "no HTTP response"))
                return
            }
            let body = data ?? Data()
            guard body.count <= self.maxResponseBytes else {
                result = .failure(.TooLarge(limit: UInt64(self.maxResponseBytes)))
                return
            }
            let retryAfter = (response.value(forHTTPHeaderField: "Retry-After")).flatMap { UInt64($0) }.map { $0 * 1000 }
            result = .success(TransportResponse(status: UInt16(response.statusCode), body: body, retryAfterMs: retryAfter))
        }.resume()
        done.wait()
        return try result.get()
    }
}
