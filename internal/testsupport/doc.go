// Package testsupport holds what only tests use: the testing.TB conveniences over the
// stand-ins of package fakeaws (one reset moto_server per test, a fault proxy closed
// with the test), in-process SDK-shaped fakes (fakeapi) and the JSON Schema checks
// (schematest). No production binary may link it; internal/iamcheck's
// TestProductionBinariesLinkNoTestCode fails if one does.
package testsupport
