import Covey
import SwiftUI

/// The privacy center: the plain-language summary, every purpose with a switch, what is
/// stored, what left the phone (model updates and the privacy loss ε), the signed receipts,
/// export and erase.
struct PrivacyCenterView: View {
    @ObservedObject var model: RewardsModel
    @State private var confirmErase = false
    @State private var exportURL: URL?

    var body: some View {
        List {
            if let summary = model.summary {
                Section { Text(summary.plainLanguage) }
                Section("Your choices") {
                    ForEach(summary.purposes, id: \.title) { p in
                        Toggle(isOn: Binding(get: { p.state == .given }, set: { model.setAllowed(p.purpose, $0) })) {
                            VStack(alignment: .leading) {
                                Text(p.title)
                                Text(p.leavesDevice ? p.egress : "Stays on this phone").font(.caption)
                                Text("\(ConsentCopy.choice(p.state)) · kept \(p.retentionDays) days").font(.caption2)
                            }
                        }
                    }
                }
                Section("Stored on this phone") {
                    ForEach(summary.stored.filter { $0.count > 0 }, id: \.category) { s in
                        Text("\(ConsentCopy.category(s.category)): \(s.count)")
                    }
                }
                Section("Left this phone") {
                    Text("\(summary.uploads) model update(s), privacy loss ε = \(summary.cumulativeEpsilon, specifier: "%.3f")")
                    if let last = summary.lastUploadMs { Text("Last update sent \(ConsentCopy.date(last))") }
                }
            }
            Section("Receipts") {
                ForEach(model.receipts, id: \.receiptId) { r in
                    Text("\(ConsentCopy.date(r.eventTimeMs)) \(r.purpose) \(String(describing: r.event)) · notice v\(r.noticeVersion)")
                        .font(.caption)
                }
            }
            Section {
                Button("Download my data") { exportURL = model.exportToFile() }
                if let url = exportURL { ShareLink(item: url) }
                Button("Delete everything", role: .destructive) { confirmErase = true }
            }
        }
        .navigationTitle("Privacy center")
        .onAppear { model.refresh() }
        .confirmationDialog("Delete everything on this phone, including your choices?", isPresented: $confirmErase) {
            Button("Delete", role: .destructive) { model.eraseEverything() }
        }
    }
}
