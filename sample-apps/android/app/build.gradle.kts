// The app compiles three source trees besides its own:
//   ../../../bindings/kotlin/src/main/kotlin      Kotlin generated from covey-ffi (scripts/generate-bindings)
//   ../../../bindings/kotlin/src/platform/kotlin  key wrapping shared with the JVM (SecretKeyWrapping)
//   ../../rewards-core/src/main/kotlin            the member journey shared with kotlin-console
// and packages libcovey_ffi.so for each ABI from src/main/jniLibs (built by cargo-ndk, see
// README.md).
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.compose")
}

android {
    namespace = "dev.covey.rewards.android"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.covey.rewards.android"
        // Android Keystore AES-GCM keys with user-authentication options need API 23; 26 for
        // java.time without desugaring.
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    sourceSets["main"].kotlin.srcDirs(
        "src/main/kotlin",
        "../../../bindings/kotlin/src/main/kotlin",
        "../../../bindings/kotlin/src/platform/kotlin",
        "../../rewards-core/src/main/kotlin",
    )

    buildFeatures { compose = true }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    packaging {
        // The uniffi library is loaded by JNA by name; keep it uncompressed and unstripped of
        // its exported symbols.
        jniLibs.useLegacyPackaging = false
    }
}

dependencies {
    // JNA's Android flavour (an AAR with libjnidispatch for every ABI).
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    implementation("com.squareup.okhttp3:okhttp:5.5.1")
    implementation("androidx.work:work-runtime-ktx:2.10.0")
    implementation("androidx.activity:activity-compose:1.9.3")
    implementation("androidx.lifecycle:lifecycle-viewmodel-compose:2.8.7")
    implementation(platform("androidx.compose:compose-bom:2024.12.01"))
    implementation("androidx.compose.material3:material3")
    implementation("androidx.compose.ui:ui")
}
