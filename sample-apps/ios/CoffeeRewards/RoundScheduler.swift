import BackgroundTasks
import Covey
import Network
import UIKit

/// Joins federated rounds from a `BGProcessingTask`: iOS runs it when the phone is plugged in,
/// connected and not in use. The task measures the conditions again and hands them to the
/// library, which refuses with a named reason if they do not hold; the task's expiration
/// handler cancels the round through its `CancelHandle`.
enum RoundScheduler {
    static let identifier = "dev.covey.rewards.round"

    /// Registers the task handler; call once, before the app finishes launching.
    static func register(client: CoveyClient) {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            guard let task = task as? BGProcessingTask else { return }
            run(task, client: client)
        }
    }

    /// Schedules the next run if the member allowed "Improve recommendations for everyone".
    static func scheduleIfAllowed(_ client: CoveyClient) {
        guard (try? client.status(purpose: .federatedTraining).validForProcessing) == true else {
            cancel()
            return
        }
        let request = BGProcessingTaskRequest(identifier: identifier)
        request.requiresExternalPower = true
        request.requiresNetworkConnectivity = true
        request.earliestBeginDate = Date(timeIntervalSinceNow: 6 * 3600)
        try? BGTaskScheduler.shared.submit(request)
    }

    static func cancel() {
        BGTaskScheduler.shared.cancel(taskRequestWithIdentifier: identifier)
    }

    private static func run(_ task: BGProcessingTask, client: CoveyClient) {
        let cancel = CancelHandle()
        task.expirationHandler = { cancel.cancel() }
        DispatchQueue.global(qos: .utility).async {
            defer { scheduleIfAllowed(client) }
            guard let url = Bundle.main.object(forInfoDictionaryKey: "CoveyServerURL") as? String else {
                task.setTaskCompleted(success: false)
                return
            }
            do {
                let transport = URLSessionTransport(baseURL: url)
                // Pick up the model earlier rounds published, then take part in this one.
                _ = try? client.refreshModelWithTransport(transport: transport)
                _ = try client.participateWithTransport(transport: transport, conditions: conditions(), cancel: cancel)
                task.setTaskCompleted(success: true)
            } catch CoveyError.NotEligible(_) {
                task.setTaskCompleted(success: true)   // not this time; the reason is in the error
            } catch {
                task.setTaskCompleted(success: false)
            }
        }
    }

    /// Battery state and level from UIDevice, an unexpensive and unconstrained network path
    /// from NWPathMonitor, and idle because iOS only runs processing tasks when it is.
    private static func conditions() -> DeviceConditions {
        let device = UIDevice.current
        device.isBatteryMonitoringEnabled = true
        let charging = device.batteryState == .charging || device.batteryState == .full
        let percent = device.batteryLevel < 0 ? 0 : UInt8(min(100, max(0, device.batteryLevel * 100)))
        return DeviceConditions(charging: charging, unmetered: currentPathIsUnmetered(), idle: true, batteryPercent: percent)
    }

    private static func currentPathIsUnmetered() -> Bool {
        let monitor = NWPathMonitor()
        let ready = DispatchSemaphore(value: 0)
        var unmetered = false
        monitor.pathUpdateHandler = { path in
            unmetered = path.status == .satisfied && !path.isExpensive && !path.isConstrained
            ready.signal()
        }
        monitor.start(queue: DispatchQueue(label: "dev.covey.rewards.path"))
        _ = ready.wait(timeout: .now() + 2)
        monitor.cancel()
        return unmetered
    }
}
