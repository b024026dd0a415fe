import Covey
import SwiftUI

/// The consent prompt. Shown whenever `promptsNeeded()` is non-empty: at first launch, after a
/// material change of the terms, when a consent expired or is about to. Declining is as easy
/// as accepting, and nothing is pre-selected.
struct ConsentSheet: View {
    @ObservedObject var model: RewardsModel
    let card: ConsentCard

    var body: some View {
        NavigationStack {
            Form {
                Section { Text(card.why).font(.headline) }
                Section("What it uses") { ForEach(card.uses, id: \.self) { Text($0) } }
                Section("Where it goes") {
                    Text(card.whereItGoes)
                    if !card.leavesPhone { Label("Never leaves this phone", systemImage: "lock.iphone") }
                    Text("Kept for \(card.keptForDays) days")
                }
                Section("In short") { Text(card.plainLanguage).font(.footnote) }
                Section {
                    Button("Allow") { model.answer(card, accept: true) }
                    Button("Don't allow") { model.answer(card, accept: false) }
                }
            }
            .navigationTitle(card.title)
            .onAppear { model.shown(card) }
        }
        .interactiveDismissDisabled()
    }
}
