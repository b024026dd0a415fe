import Covey
import Foundation

/// The member journey over one `CoveyClient` (the Swift twin of the Kotlin `RewardsSession`):
/// consent cards, purchases, offers with their reasons, the privacy center, export, erase.
/// The client blocks on disk I/O, so every call runs on a background queue and publishes on
/// the main queue.
@MainActor
final class RewardsModel: ObservableObject {
    static let noticeVersion: UInt32 = 1

    @Published private(set) var cards: [ConsentCard] = []
    @Published private(set) var offers: OfferList?
    @Published private(set) var summary: PrivacySummary?
    @Published private(set) var receipts: [Receipt] = []
    @Published private(set) var lastError: String?

    let client: CoveyClient
    private let work = DispatchQueue(label: "dev.covey.rewards.client", qos: .userInitiated)

    init(client: CoveyClient) {
        self.client = client
    }

    /// Opens the member's store under Application Support, its key wrapped by the Keychain.
    static func open() throws -> RewardsModel {
        let support = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
        var dir = support.appendingPathComponent("covey", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // The store is useless without its Keychain key (ThisDeviceOnly): keep it out of backups.
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try dir.setResourceValues(values)
        let config = ClientConfig(
            dataDir: dir.path, anchorPath: nil, population: "coffee-rewards",
            serverUrl: Bundle.main.object(forInfoDictionaryKey: "CoveyServerURL") as? String,
            noticeId: "coffee-rewards-notice", noticeVersion: noticeVersion, noticeLanguage: "en",
            noticeText: NSLocalizedString("notice_text", value: noticeText, comment: "privacy notice"),
            controllerName: "Coffee Shop Rewards Ltd", controllerContact: "privacy@coffee.example",
            subjectRef: "app-install", jurisdiction: "EU",
            withdrawalMethod: "Privacy center in the app", renewalWindowDays: 30
        )
        let client = try CoveyClient.open(config: config, keyStore: KeychainKeyStore())
        // The first model ships in the app bundle (an operator export); later versions come
        // from the server.
        if try client.modelVersion() == nil,
           let url = Bundle.main.url(forResource: "coffee-model", withExtension: "bin") {
            _ = try client.installModel(model: try Data(contentsOf: url))
        }
        return RewardsModel(client: client)
    }

    /// Re-reads everything shown; called on launch and whenever the app becomes active, so the
    /// consent sheet re-appears as soon as `promptsNeeded()` asks for it.
    func refresh() {
        run { c in
            let summary = try c.privacySummary()
            return (ConsentCopy.cards(try c.promptsNeeded(), summary), summary, try c.receipts(), try Offers.load(c, count: 3))
        } done: { cards, summary, receipts, offers in
            self.cards = cards
            self.summary = summary
            self.receipts = receipts
            self.offers = offers
        }
    }

    func shown(_ card: ConsentCard) {
        run { c in _ = try c.promptShown(purpose: card.purpose, surface: "consent_sheet") } done: { _ in }
    }

    func answer(_ card: ConsentCard, accept: Bool) {
        run { c in
            if accept {
                _ = try c.grant(purpose: card.purpose, noticeVersion: Self.noticeVersion, surface: "consent_sheet")
            } else {
                _ = try c.refuse(purpose: card.purpose, noticeVersion: Self.noticeVersion, surface: "consent_sheet")
            }
        } done: { _ in
            self.refresh()
            RoundScheduler.scheduleIfAllowed(self.client)
        }
    }

    func setAllowed(_ purpose: Purpose, _ allowed: Bool) {
        run { c in
            if allowed {
                _ = try c.grant(purpose: purpose, noticeVersion: Self.noticeVersion, surface: "privacy_center")
            } else {
                _ = try c.withdraw(purpose: purpose, noticeVersion: Self.noticeVersion, surface: "privacy_center")
            }
        } done: { _ in
            self.refresh()
            RoundScheduler.scheduleIfAllowed(self.client)
        }
    }

    func buy(_ item: MenuItem) {
        let event = LoyaltyEvent(
            kind: .purchase, itemId: item.id, category: item.category, quantity: 1,
            amountMinor: item.priceCents, currency: "USD", storeId: "store-001", channel: .inStore,
            timeMs: Int64(Date().timeIntervalSince1970 * 1000)
        )
        run { c in _ = try c.recordEvent(event: event) } done: { _ in self.refresh() }
    }

    /// Writes the export to a temporary file for the share sheet.
    func exportToFile() -> URL? {
        do {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("coffee-rewards-export.json")
            try client.exportJson().write(to: url, atomically: true, encoding: .utf8)
            return url
        } catch {
            lastError = String(describing: error)
            return nil
        }
    }

    func eraseEverything() {
        run { c in _ = try c.eraseAll() } done: { _ in
            RoundScheduler.cancel()
            self.refresh()
        }
    }

    private func run<T>(_ body: @escaping (CoveyClient) throws -> T, done: @escaping (T) -> Void) {
        let client = self.client
        work.async {
            do {
                let value = try body(client)
                Task { @MainActor in done(value) }
            } catch {
                // CoveyError's messages carry no member data.
                Task { @MainActor in self.lastError = String(describing: error) }
            }
        }
    }

    private static let noticeText = "Coffee Shop Rewards keeps your purchases on this phone to suggest offers you may like. If you agree, your phone also helps improve suggestions for all members by sending a noised, encrypted model update that can only be read summed with many others. Your purchase history itself never leaves the phone."
}
