import Covey
import Foundation

/// One consent prompt as shown: why now, what it uses, where data goes, how long it is kept,
/// and the plain-language summary. Built only from the library's declarations (the prompt list
/// and the privacy summary), like the Kotlin `ConsentCard`.
struct ConsentCard: Identifiable {
    let purpose: Purpose
    let title: String
    let why: String
    let uses: [String]
    let whereItGoes: String
    let leavesPhone: Bool
    let keptForDays: UInt32
    let plainLanguage: String
    var id: String { title }
}

enum ConsentCopy {
    static func why(_ reason: PromptReason) -> String {
        switch reason {
        case .neverAsked: return "You haven't decided yet."
        case .termsChanged: return "We changed how this works; please decide again."
        case .expired: return "Your earlier choice has expired."
        case let .expiresSoon(validUntilMs): return "Your consent runs out on \(date(validUntilMs))."
        }
    }

    static func category(_ c: DataCategory) -> String {
        switch c {
        case .purchases: return "purchases"
        case .redemptions: return "reward redemptions"
        case .visits: return "store visits"
        case .offerInteractions: return "offers you viewed or opened"
        case .personalModel: return "your personal taste profile (computed on this phone)"
        }
    }

    static func choice(_ state: ConsentState) -> String {
        switch state {
        case .notAsked: return "not decided"
        case .given: return "allowed"
        case .refused: return "declined"
        case .withdrawn: return "withdrawn"
        case .expired: return "expired"
        }
    }

    static func date(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: TimeInterval(ms) / 1000).formatted(date: .abbreviated, time: .omitted)
    }

    static func cards(_ prompts: [ConsentPrompt], _ summary: PrivacySummary) -> [ConsentCard] {
        prompts.compactMap { prompt in
            guard let p = summary.purposes.first(where: { $0.purpose == prompt.purpose }) else { return nil }
            return ConsentCard(
                purpose: p.purpose, title: p.title, why: why(prompt.reason),
                uses: p.dataCategories.map(category), whereItGoes: p.egress, leavesPhone: p.leavesDevice,
                keptForDays: p.retentionDays, plainLanguage: summary.plainLanguage
            )
        }
    }
}
