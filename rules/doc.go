// Package rules is m365tap's vocabulary: the typed outcomes an exchange can
// end with, the catalogue of Microsoft 365 endpoints and NCSI probes that
// requests are matched against, and the table that maps a failing match to
// the cause the support article gives. It uses the standard library only and
// knows nothing of the proxy, the logs or the configuration.
//
// The pieces, in the order a caller meets them:
//
//   - Catalogue: Microsoft's endpoint list as the Office 365 IP Address and
//     URL web service publishes it. EmbeddedCatalogue parses the snapshot
//     built into the binary; ParseCatalogue validates a newer copy.
//   - Spec: a user rule, and NCSIProbes, the built-in Windows connectivity
//     probes, whose expected answer is an attribute of the rule (Probe).
//   - Compile turns catalogue, probes and user rules into a Set once; Set.Match
//     then answers per request without parsing or allocating. The precedence
//     between overlapping rules is documented on Set.
//   - CauseFor maps (rule kind, Outcome, ExpressRoute) to one of the article's
//     causes through a literal table (causeRows in cause.go), with the
//     wording in English and Japanese embedded as data.
package rules
