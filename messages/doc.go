// Package messages is m365tap's one catalogue of the texts a person reads:
// the session report in every format, the probe's table, tail's labels and
// the commonest configuration errors, in English and Japanese. Each text
// has a message id and named parameters ({{.Host}}), so a sentence is
// translated whole and never assembled from translated fragments.
//
// The texts live in en.yaml and ja.yaml beside this file, in
// github.com/nicksnyder/go-i18n/v2's message file format; the cause titles
// and remedies stay in the rules package's causes.json, because the tap
// writes them into every event and rules must stay a leaf, and are added
// to the same catalogue here under cause.<id>.title, .remedy and .link.
// A test fails when an id lacks a language or the languages disagree on an
// id's parameters.
package messages
